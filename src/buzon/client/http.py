"""A blocking client for the broker's HTTP API (``/api/v1``), on ``httpx.Client``.

Strategy: one method per endpoint, each returning a frozen dataclass decoded from the JSON
answer, so callers never index raw dicts. Every failure is translated here, once: an error
answer becomes :class:`~buzon.client.errors.ApiError` with the broker's ErrorCode, a
network failure becomes :class:`~buzon.client.errors.BuzonConnectionError`, and an answer
that is not what the API documents (another server on that port) becomes an ApiError with
INTERNAL_ERROR. No httpx exception escapes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import ssl as ssl_module
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

import httpx

from buzon import __version__
from buzon.client.errors import ApiError, BuzonConnectionError
from buzon.client.records import (
    DESTINATION_PARSERS,
    BindingInfo,
    ChannelInfo,
    ConnectionInfo,
    DestinationKind,
    NodeInfo,
    Overview,
    PeekedMessage,
    PulledMessage,
    QueueInfo,
    RatePoint,
    RedriveInfo,
    ScheduledMessage,
    Token,
    User,
    many,
    nothing,
    parse_binding,
    parse_channel,
    parse_cluster,
    parse_connection,
    parse_message_id,
    parse_overview,
    parse_peeked,
    parse_pulled,
    parse_purged,
    parse_queue,
    parse_rate_history,
    parse_redrive,
    parse_scheduled,
    parse_settled,
    parse_token,
    parse_user,
)
from buzon.client.timing import Delay, When, delay_ms, schedule
from buzon.client.tls import CaFile, client_context, failure_reason
from buzon.errors import ErrorCode, RequestError
from buzon.store.records import QueuePolicy

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for the broker: far above any answer's latency on a healthy broker."""

_T = TypeVar("_T")
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


def broker_url(url: str) -> str:
    """``url`` as the broker's root URL: ``http(s)://HOST[:PORT][/prefix]``, no ``/api/v1``.

    Accepts both the root and the API URL that ``buzon serve`` prints, so either works.

    Raises:
        RequestError: BAD_REQUEST when ``url`` is not an http or https URL with a host.
    """
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"broker URL {url[:200]!r} is not http(s)://HOST[:PORT]"
        )
    path = parsed.path.rstrip("/")
    path = path.removesuffix(API_PREFIX)
    return str(parsed.copy_with(path=path, query=None, fragment=None)).rstrip("/")


class ManagementClient:
    """The broker's HTTP API: accounts, queues and channels, messages, broker state.

    Use it as a context manager, or call :meth:`close`. Authentication is a bearer
    ``token`` (from :meth:`login`, which also makes this client use it) or ``basic``
    ``(username, password)``, the token winning when both are set; with neither, only
    :meth:`register`, :meth:`login` and :meth:`healthz` work.

    Args:
        url: the broker, e.g. ``http://127.0.0.1:8180`` (``/api/v1`` may be included).
        token: a bearer token from an earlier login.
        basic: username and password, sent with every request (each one costs the broker
            a password check, so prefer a token for many requests).
        timeout: seconds to wait for an answer (a pull adds its ``wait_ms``).
        ssl: the TLS context for an ``https://`` URL (default: httpx's, which verifies
            the certificate and the host name).
        ca_file: for ``https://``, a PEM file of the CA certificates to trust instead of
            the default ones (a private CA); the host name is still checked.

    Every method raises :class:`ApiError` when the broker refuses (its ``code`` is the
    broker's ErrorCode) and :class:`BuzonConnectionError` when there is no answer.

    Raises:
        RequestError: BAD_REQUEST when ``url`` is not a valid broker URL, for ``ssl`` or
            ``ca_file`` with an ``http://`` URL or both at once, or an unreadable CA file.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl: ssl_module.SSLContext | None = None,
        ca_file: CaFile | None = None,
    ) -> None:
        self.url = broker_url(url)
        self.token = token
        self._basic = basic
        self._timeout = timeout
        https = self.url.startswith("https://")
        context = client_context(self.url, https, ssl, ca_file)
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            timeout=timeout,
            headers={"User-Agent": f"buzon-client/{__version__}"},
            verify=True if context is None else context,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # -- accounts ----------------------------------------------------------------------

    def register(self, username: str, password: str, *, role: str = "user") -> User:
        """Create an account (anyone while registration is open; admins always).

        Only an admin client may give ``role="admin"``.
        """
        body = {"username": username, "password": password, "role": role}
        return self._call("POST", "/users", parse_user, body=body)

    def login(self, username: str, password: str) -> Token:
        """Exchange a password for a bearer token; this client uses it from now on."""
        body = {"username": username, "password": password}
        token = self._call("POST", "/sessions", parse_token, body=body)
        self.token = token.token
        return token

    def logout(self) -> None:
        """Revoke this client's bearer token on the broker and forget it."""
        self._call("DELETE", "/sessions/current", nothing)
        self.token = None

    def whoami(self) -> User:
        """The account this client acts as."""
        return self._call("GET", "/users/me", parse_user)

    def list_users(self) -> list[User]:
        """Every account (admins only)."""
        return self._call("GET", "/users", many(parse_user))

    def update_user(
        self, name: str, *, disabled: bool | None = None, role: str | None = None
    ) -> User:
        """Disable or enable ``name``, or change their role (admins only); None keeps it."""
        body = {"disabled": disabled, "role": role}
        return self._call("PATCH", f"/users/{_segment(name)}", parse_user, body=body)

    def delete_user(self, name: str) -> None:
        """Delete ``name`` and revoke their tokens (admins only); their destinations stay."""
        self._call("DELETE", f"/users/{_segment(name)}", nothing)

    # -- queues and channels -----------------------------------------------------------

    def create_destination(
        self, kind: DestinationKind, name: str, *, access_key: str | None = None
    ) -> QueueInfo | ChannelInfo:
        """Create a queue or channel owned by this client's user.

        With ``access_key`` (8 characters or more), other users must present it to
        publish or consume.
        """
        body = {"name": name, "access_key": access_key}
        return self._call("POST", f"/{kind.collection}", DESTINATION_PARSERS[kind], body=body)

    def list_destinations(self, kind: DestinationKind) -> list[QueueInfo] | list[ChannelInfo]:
        """Every queue, or every channel."""
        if kind is DestinationKind.QUEUE:
            return self.list_queues()
        return self.list_channels()

    def get_destination(self, kind: DestinationKind, name: str) -> QueueInfo | ChannelInfo:
        """One queue or channel by name."""
        return self._call("GET", _path(kind, name), DESTINATION_PARSERS[kind])

    def delete_destination(self, kind: DestinationKind, name: str) -> None:
        """Delete a queue or channel and its messages (owner or admin)."""
        self._call("DELETE", _path(kind, name), nothing)

    def create_queue(
        self,
        name: str,
        *,
        access_key: str | None = None,
        policy: QueuePolicy | None = None,
        dead_letter_access_key: str | None = None,
    ) -> QueueInfo:
        """Create a queue; see :meth:`create_destination`.

        Args:
            name: the queue's name.
            access_key: others must present it to publish or consume.
            policy: durability, maximum length and overflow, message TTL, dead-letter
                queue, maximum deliveries, retry back-off (``retry_delay_ms``,
                ``retry_multiplier``, ``retry_max_delay_ms``); the broker's defaults when
                None. Only the fields that differ from the defaults are sent.
            dead_letter_access_key: the key of the policy's dead-letter queue when that is
                another user's protected queue (dead-lettering publishes there: without
                it, or with a wrong one, the broker refuses with 403).
        """
        body: dict[str, Any] = {"name": name, "access_key": access_key}
        if dead_letter_access_key is not None:
            body["dead_letter_access_key"] = dead_letter_access_key
        if policy is not None:
            body["policy"] = _changed(policy)
        return self._call("POST", "/queues", parse_queue, body=body)

    def purge_queue(self, name: str) -> int:
        """Drop a queue's waiting messages (owner or admin); return how many."""
        return self._call("POST", f"{_path(DestinationKind.QUEUE, name)}/purge", parse_purged)

    def scheduled(
        self, queue: str, *, limit: int = 20, access_key: str | None = None
    ) -> list[ScheduledMessage]:
        """The messages of ``queue`` waiting for their time (delayed publishes, retries),
        soonest first; ``limit`` 1-100. Needs the right to consume, as :meth:`peek`."""
        return self._call(
            "GET",
            f"{_path(DestinationKind.QUEUE, queue)}/scheduled?limit={limit:d}",
            parse_scheduled,
            headers=_key_header(access_key),
        )

    def deliver_now(self, queue: str, message_id: str) -> None:
        """Make a scheduled message of ``queue`` deliverable at once (owner or admin).

        Raises:
            ApiError: NOT_FOUND when no message with that id is scheduled there.
        """
        path = f"{_path(DestinationKind.QUEUE, queue)}/scheduled/{_segment(message_id)}/deliver"
        self._call("POST", path, nothing)

    def cancel_scheduled(self, queue: str, message_id: str) -> None:
        """Drop a scheduled message of ``queue`` for good (owner or admin).

        Raises:
            ApiError: NOT_FOUND when no message with that id is scheduled there.
        """
        path = f"{_path(DestinationKind.QUEUE, queue)}/scheduled/{_segment(message_id)}"
        self._call("DELETE", path, nothing)

    def list_queues(self) -> list[QueueInfo]:
        """Every queue."""
        return self._call("GET", "/queues", many(parse_queue))

    def get_queue(self, name: str) -> QueueInfo:
        """One queue by name."""
        return self._call("GET", _path(DestinationKind.QUEUE, name), parse_queue)

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages (owner or admin)."""
        self.delete_destination(DestinationKind.QUEUE, name)

    def create_channel(
        self, name: str, *, access_key: str | None = None, type: str = "fanout"
    ) -> ChannelInfo:
        """Create a channel; see :meth:`create_destination`. ``type`` is how it routes,
        fixed from now on: ``fanout``, ``direct`` or ``topic``."""
        body = {"name": name, "access_key": access_key, "type": type}
        return self._call("POST", "/channels", parse_channel, body=body)

    def bind(
        self,
        channel: str,
        queue: str,
        routing_key: str = "",
        *,
        channel_access_key: str | None = None,
        queue_access_key: str | None = None,
    ) -> BindingInfo:
        """Bind ``queue`` to ``channel``: the channel's messages whose routing key
        ``routing_key`` matches are also enqueued there. Needs the right to consume from
        the channel and to publish into the queue (their keys, when another user's
        protected ones)."""
        body: dict[str, Any] = {"queue": queue, "routing_key": routing_key}
        if channel_access_key is not None:
            body["channel_access_key"] = channel_access_key
        if queue_access_key is not None:
            body["queue_access_key"] = queue_access_key
        path = f"{_path(DestinationKind.CHANNEL, channel)}/bindings"
        return self._call("POST", path, parse_binding, body=body)

    def unbind(self, channel: str, queue: str, routing_key: str = "") -> None:
        """Remove a binding (whoever made it, either owner, or an admin)."""
        query = urlencode({"queue": queue, "routing_key": routing_key})
        self._call("DELETE", f"{_path(DestinationKind.CHANNEL, channel)}/bindings?{query}", nothing)

    def bindings(self, channel: str) -> list[BindingInfo]:
        """A channel's queue bindings, by queue and key."""
        path = f"{_path(DestinationKind.CHANNEL, channel)}/bindings"
        return self._call("GET", path, many(parse_binding))

    def list_channels(self) -> list[ChannelInfo]:
        """Every channel."""
        return self._call("GET", "/channels", many(parse_channel))

    def get_channel(self, name: str) -> ChannelInfo:
        """One channel by name."""
        return self._call("GET", _path(DestinationKind.CHANNEL, name), parse_channel)

    def delete_channel(self, name: str) -> None:
        """Delete a channel (owner or admin)."""
        self.delete_destination(DestinationKind.CHANNEL, name)

    # -- messages ----------------------------------------------------------------------

    def publish(
        self,
        destination: str,
        body: str | bytes,
        *,
        headers: Mapping[str, str] | None = None,
        access_key: str | None = None,
        delay: Delay | None = None,
        deliver_at: When | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
    ) -> str:
        """Publish ``body`` to ``destination`` (``/queue/<name>``, ``/topic/<name>``, or
        ``/topic/<name>/<routing key>`` for a direct or topic channel).

        Args:
            destination: the STOMP address.
            body: text (sent as UTF-8) or bytes.
            headers: user headers for the consumers (``content-type`` is allowed).
            access_key: the destination's key, when it has one and you do not own it.
            delay: queues: deliver no earlier than this long from now (seconds or a
                ``timedelta``).
            deliver_at: queues: or no earlier than this moment (an aware ``datetime`` or
                Unix seconds).
            idempotency_key: sent as ``Idempotency-Key``: publishing again with the same
                key within the queue's ``dedup_window_ms`` enqueues nothing and returns the
                first message's id (a safe retry after a lost answer).
            priority: 0 (lowest) to 9: a queue hands out higher priorities first (the
                broker refuses anything else with BAD_REQUEST); its default (4) when None.

        Returns:
            The message id.

        Raises:
            RequestError: BAD_DESTINATION when ``destination`` is neither address form.
            ValueError: both ``delay`` and ``deliver_at``, or a negative one.
        """
        payload: dict[str, object] = {"headers": dict(headers or {})}
        timing = schedule(delay, deliver_at)
        if timing is not None:
            payload["delay_ms" if timing[0] == "delay" else "deliver_at_ms"] = timing[1]
        if isinstance(body, str):
            payload["body"] = body
        else:
            payload["body_base64"] = base64.b64encode(body).decode()
        request_headers = _key_header(access_key)
        if idempotency_key is not None:
            if not idempotency_key.isascii():
                raise RequestError(
                    ErrorCode.BAD_REQUEST, "the HTTP API takes ASCII idempotency keys only"
                )
            request_headers = {**request_headers, "Idempotency-Key": idempotency_key}
        if priority is not None:
            payload["priority"] = priority
        return self._call(
            "POST",
            _publish_path(destination),
            parse_message_id,
            body=payload,
            headers=request_headers,
        )

    def publish_json(
        self,
        destination: str,
        value: object,
        *,
        headers: Mapping[str, str] | None = None,
        access_key: str | None = None,
    ) -> str:
        """Publish ``value`` as JSON with ``content-type: application/json``; see publish."""
        merged = {"content-type": "application/json", **(headers or {})}
        text = json.dumps(value, separators=(",", ":"))
        return self.publish(destination, text, headers=merged, access_key=access_key)

    def pull(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        lease_ms: int = 30_000,
        wait_ms: int = 0,
        access_key: str | None = None,
    ) -> list[PulledMessage]:
        """Lease up to ``max_messages`` (1-100) from ``queue``, waiting up to ``wait_ms``.

        A message not acked or nacked within ``lease_ms`` (1 s to 12 h) goes back to
        the queue, marked redelivered. An empty list means nothing arrived in time.
        """
        body = {"max": max_messages, "lease_ms": lease_ms, "wait_ms": wait_ms}
        return self._call(
            "POST",
            f"{_path(DestinationKind.QUEUE, queue)}/pull",
            parse_pulled,
            body=body,
            headers=_key_header(access_key),
            timeout=self._timeout + wait_ms / 1000,
        )

    def peek(
        self, queue: str, *, limit: int = 10, access_key: str | None = None
    ) -> list[PeekedMessage]:
        """The oldest ``limit`` (1-100) messages waiting in ``queue``, left where they are.

        Messages delivered and not yet acknowledged are not shown. Peeking needs the right
        to consume: someone else's protected queue needs its ``access_key``.

        Raises:
            ApiError: ACCESS_KEY_REQUIRED or ACCESS_KEY_WRONG for a protected queue,
                DESTINATION_NOT_FOUND, BAD_REQUEST for a ``limit`` out of range.
        """
        return self._call(
            "GET",
            f"{_path(DestinationKind.QUEUE, queue)}/messages?limit={limit:d}",
            parse_peeked,
            headers=_key_header(access_key),
        )

    def ack(self, queue: str, *receipts: str) -> int:
        """Settle pulled messages for good; all receipts or none. Returns how many."""
        return self._settle(queue, "ack", receipts)

    def nack(
        self,
        queue: str,
        *receipts: str,
        requeue: bool = True,
        delay: Delay | None = None,
        error: str | None = None,
    ) -> int:
        """Give pulled messages back to the queue, in order, marked redelivered: after
        ``delay`` (seconds or a ``timedelta``), else after the queue's retry back-off.
        ``requeue=False`` dead-letters them at once (reason ``rejected``); ``error`` (at
        most 1024 characters) is kept with each (``x-last-error``)."""
        refusal: dict[str, object] = {}
        if not requeue:
            refusal["requeue"] = False
        if delay is not None:
            refusal["requeue_delay_ms"] = delay_ms(delay)
        if error is not None:
            refusal["error"] = error
        return self._settle(queue, "nack", receipts, refusal)

    def _settle(
        self,
        queue: str,
        verb: str,
        receipts: tuple[str, ...],
        more: Mapping[str, object] | None = None,
    ) -> int:
        path = f"{_path(DestinationKind.QUEUE, queue)}/{verb}"
        body = {"receipts": list(receipts), **(more or {})}
        return self._call("POST", path, parse_settled, body=body)

    # -- dead letters ------------------------------------------------------------------

    def redrive(
        self,
        queue: str,
        *,
        to: str | None = None,
        rate_per_s: int | None = None,
        limit: int | None = None,
        access_key: str | None = None,
    ) -> RedriveInfo:
        """Start moving the messages waiting in the dead-letter queue ``queue`` back to
        where they were dead-lettered from (their ``x-original-destination``), or to
        ``to``; at most ``rate_per_s`` a second and ``limit`` in all (None: no bound).

        It runs in the broker; follow it with :meth:`redrive_status`. Only the queue's
        owner or an admin may; ``access_key`` is the target's, when it is another user's
        protected queue. Each message keeps its headers, gets ``x-redrive-count``, and
        leaves ``queue`` only once stored in its target (at-least-once).
        """
        body = {"to": to, "rate_per_s": rate_per_s, "limit": limit}
        return self._call(
            "POST",
            f"{_path(DestinationKind.QUEUE, queue)}/redrive",
            parse_redrive,
            body=body,
            headers=_key_header(access_key),
        )

    def redrive_status(self, redrive_id: str) -> RedriveInfo:
        """How far a redrive this user started (or any, for an admin) got."""
        return self._call("GET", f"/redrives/{_segment(redrive_id)}", parse_redrive)

    def cancel_redrive(self, redrive_id: str) -> RedriveInfo:
        """Stop a running redrive; returns it once stopped (``failed``, ``cancelled_by``
        set). Moved messages stay moved, the rest stay in the dead-letter queue."""
        return self._call("DELETE", f"/redrives/{_segment(redrive_id)}", parse_redrive)

    # -- the broker --------------------------------------------------------------------

    def overview(self) -> Overview:
        """Counts and message rates of the whole broker."""
        return self._call("GET", "/overview", parse_overview)

    def rate_history(self) -> list[RatePoint]:
        """Message rates second by second, oldest first (the last five minutes at most)."""
        return self._call("GET", "/overview/history", parse_rate_history)

    def connections(self) -> list[ConnectionInfo]:
        """Open STOMP connections: all of them for an admin, else the caller's own."""
        return self._call("GET", "/connections", many(parse_connection))

    def close_connection(self, connection_id: str) -> None:
        """Close the STOMP connection ``connection_id`` (admins only).

        The client gets an ERROR with CONNECTION_CLOSED_BY_ADMIN and is disconnected; its
        unacknowledged messages go back to their queues. It may connect again.

        Raises:
            ApiError: ACCESS_DENIED for a caller who is not an admin, CONNECTION_NOT_FOUND
                when no such connection is open.
        """
        self._call("DELETE", f"/connections/{_segment(connection_id)}", nothing)

    def cluster(self) -> list[NodeInfo]:
        """The nodes of the broker's cluster, by name (admins only); a broker on SQLite or
        memory storage is a cluster of one, itself.

        Raises:
            ApiError: ACCESS_DENIED for a caller who is not an admin.
        """
        return self._call("GET", "/cluster", parse_cluster)

    def healthz(self) -> str:
        """The broker's liveness status, ``"ok"`` (no authentication needed)."""
        return self._call("GET", "/healthz", lambda data: str(data["status"]))

    def stomp_urls(self) -> list[str]:
        """The broker's STOMP listeners as URLs to connect to, plain ``stomp://`` first
        (``GET /info``, no authentication needed)."""
        return self._call("GET", "/info", lambda data: [str(url) for url in data["stomp"]])

    # -- transport ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], _T],
        *,
        body: object = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> _T:
        response = self._send(method, path, body, headers or {}, timeout)
        if response.is_error:
            raise ApiError.from_body(response.status_code, _json(response), _retry(response))
        try:
            return parse(None if response.status_code == 204 else response.json())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ApiError(
                ErrorCode.INTERNAL_ERROR,
                f"unexpected answer to {method} {API_PREFIX}{path}; is {self.url} a buzon broker?",
                status=response.status_code,
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        body: object,
        headers: dict[str, str],
        timeout: float | None,
    ) -> httpx.Response:
        authorization = self._authorization()
        if authorization is not None:
            headers = {"Authorization": authorization, **headers}
        try:
            return self._http.request(
                method,
                path,
                json=body,
                headers=headers,
                timeout=self._timeout if timeout is None else timeout,
            )
        except httpx.TimeoutException:
            wait = self._timeout if timeout is None else timeout
            raise BuzonConnectionError(self.url, f"no answer within {wait:g} s") from None
        except httpx.HTTPError as exc:
            raise BuzonConnectionError(self.url, _failure(exc)) from None

    def _authorization(self) -> str | None:
        if self.token is not None:
            return f"Bearer {self.token}"
        if self._basic is not None:
            pair = ":".join(self._basic).encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return None


def _failure(exc: httpx.HTTPError) -> str:
    """Why a request got no answer; a TLS failure deep in httpx's chain says what to check."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl_module.SSLError):
            return failure_reason(cause)
        cause = cause.__cause__ or cause.__context__
    return _ERRNO.sub("", str(exc)) or type(exc).__name__


def _json(response: httpx.Response) -> object:
    try:
        decoded: object = response.json()
    except ValueError:
        return None
    return decoded


def _retry(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _segment(name: str) -> str:
    return quote(name, safe="")


def _path(kind: DestinationKind, name: str) -> str:
    return f"/{kind.collection}/{_segment(name)}"


def _publish_path(address: str) -> str:
    """Where a publish to ``address`` goes; a channel's routing key is a query parameter."""
    if address.startswith("/topic/"):
        name, _, key = address.removeprefix("/topic/").partition("/")
        if name and key:
            query = urlencode({"routing_key": key}, quote_via=quote)
            return f"{_path(DestinationKind.CHANNEL, name)}/messages?{query}"
    return _address_path(address) + "/messages"


def _address_path(address: str) -> str:
    for prefix, kind in (("/queue/", DestinationKind.QUEUE), ("/topic/", DestinationKind.CHANNEL)):
        if address.startswith(prefix) and len(address) > len(prefix):
            return _path(kind, address.removeprefix(prefix))
    raise RequestError(
        ErrorCode.BAD_DESTINATION, f"{address[:200]!r} is not /queue/<name> or /topic/<name>"
    )


def _key_header(access_key: str | None) -> dict[str, str]:
    """The ``X-Access-Key`` header; HTTP header values are ASCII, so other keys are refused
    here rather than garbled on the way (such keys still work over STOMP)."""
    if access_key is None:
        return {}
    if not access_key.isascii():
        raise RequestError(ErrorCode.BAD_REQUEST, "the HTTP API takes ASCII access keys only")
    return {"X-Access-Key": access_key}


def _changed(policy: QueuePolicy) -> dict[str, Any]:
    """The fields of ``policy`` that differ from the defaults (so a broker that does not
    know a newer field still takes a policy that leaves it alone)."""
    default = QueuePolicy()
    return {
        field.name: getattr(policy, field.name)
        for field in dataclasses.fields(policy)
        if getattr(policy, field.name) != getattr(default, field.name)
    }
