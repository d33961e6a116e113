"""How every messaging command logs in over STOMP.

The broker checks a user name and a password (or that user's bearer token) on every STOMP
connection, so the messaging commands (``publish``, ``consume``, ``subscribe``, ``shell``)
find:

- where: ``--stomp-url``, else ``$BUZON_STOMP_URL``, else the address the broker at the
  HTTP URL (``--url``, ``$BUZON_URL``) announces at ``GET /api/v1/info``: its plain STOMP
  listener, or its ``stomp+ssl`` one when that URL is ``https`` (a broker too old to
  announce it: port 61613, or ``stomp+ssl`` on 61614, on that URL's host); a TLS address
  trusts ``--ca-file`` (``$BUZON_CA_FILE``) when given;
- who: ``--username``, else the user named in the STOMP URL, else the user logged in with
  ``buzon user login`` to that HTTP URL;
- the password: the first line of stdin with ``--password-stdin``, else
  ``$BUZON_PASSWORD``, else the still-valid token of ``buzon user login`` when it is the
  same user and the STOMP address is that broker's (announced by it, or given on its
  host), else asked at the terminal. Never an argument and never in
  the URL, where other local users would read it in the process list.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from buzon.cli.session import (
    CliError,
    Credentials,
    ca_file_of,
    login_hint,
    management_client,
    read_secret,
    url_of,
)
from buzon.client import ApiError, AsyncClient, Client, DestinationKind
from buzon.client.urls import DEFAULT_PORTS, parse_stomp_url
from buzon.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class StompLogin:
    """Where and as whom a messaging command connects over STOMP (and, for a
    ``stomp+ssl`` URL, the CA file to trust, if not the system's)."""

    url: str
    username: str
    password: str = field(repr=False)
    ca_file: Path | None = None

    def async_client(self) -> AsyncClient:
        """An asyncio client for this login (connect it with ``async with``)."""
        return AsyncClient(
            self.url, login=self.username, passcode=self.password, ca_file=self.ca_file
        )

    def client(self) -> Client:
        """A blocking client for this login (connect it with ``with``)."""
        return Client(self.url, login=self.username, passcode=self.password, ca_file=self.ca_file)


def add_stomp_url_option(parser: argparse.ArgumentParser) -> None:
    """``--stomp-url`` (see the module docstring)."""
    parser.add_argument(
        "--stomp-url",
        metavar="URL",
        help="the broker's STOMP address, stomp://HOST:PORT or stomp+ssl://HOST:PORT; several"
        " brokers (the nodes of a cluster) as stomp://HOST:PORT,HOST:PORT, tried in that order"
        " and failed over (default: $BUZON_STOMP_URL, else the one the broker at --url"
        " announces; stomp+ssl when --url is https)",
    )


def add_stomp_options(parser: argparse.ArgumentParser) -> None:
    """``--stomp-url``, ``--username`` and ``--password-stdin`` (see the module docstring)."""
    add_stomp_url_option(parser)
    parser.add_argument(
        "--username", help="log in as this user (default: the one of 'buzon user login')"
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else $BUZON_PASSWORD, else asked)",
    )


def add_access_key_options(parser: argparse.ArgumentParser) -> None:
    """``--access-key`` and ``--access-key-stdin``."""
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--access-key",
        metavar="KEY",
        help="the key of another user's protected queue or channel (visible in the process"
        " list: prefer --access-key-stdin)",
    )
    keys.add_argument(
        "--access-key-stdin",
        action="store_true",
        help="read the access key from stdin (the line after the password with --password-stdin)",
    )


def address_of(kind: DestinationKind, name: str) -> str:
    """The STOMP destination of a queue (``/queue/NAME``) or a channel (``/topic/NAME``)."""
    return f"/{'topic' if kind is DestinationKind.CHANNEL else 'queue'}/{name}"


def stomp_address(args: argparse.Namespace) -> tuple[str, str | None]:
    """The STOMP URL without credentials, and the user it names, if any.

    Raises:
        CliError: the URL carries a password.
        RequestError: it is not a ``stomp://`` or ``stomp+ssl://`` URL.
    """
    given = _given_stomp_url(args)
    if not given:
        return _announced_address(args), None
    address = parse_stomp_url(given)
    if address.passcode is not None:
        raise CliError(
            detail="the STOMP URL must not hold a password (other users can read it);"
            " use --password-stdin or $BUZON_PASSWORD"
        )
    return address.display, address.login


def _given_stomp_url(args: argparse.Namespace) -> str | None:
    given: str | None = args.stomp_url or os.environ.get("BUZON_STOMP_URL")
    return given


def _announced_address(args: argparse.Namespace) -> str:
    """The STOMP listener the broker at the HTTP URL announces, TLS when that URL is.

    Raises:
        BuzonConnectionError: the HTTP URL does not answer (its address is in the message).
        ApiError: something that is not a buzon broker answered there.
        CliError: the URL is https and the broker announces plain STOMP only.
    """
    http = urlsplit(url_of(args))
    scheme = "stomp+ssl" if http.scheme == "https" else "stomp"
    try:
        with management_client(args) as client:
            announced = client.stomp_urls()
    except ApiError as exc:
        if exc.status != HTTPStatus.NOT_FOUND:
            raise
        announced = []  # a buzon from before GET /info: its default port, on the same host
    for url in announced:
        if urlsplit(url).scheme == scheme:
            return url
    if announced and scheme == "stomp+ssl":  # TLS ends in front of it (a proxy), say
        raise CliError(
            detail=f"the broker at {url_of(args)} announces no TLS STOMP listener, only"
            f" {announced[0]}: give --stomp-url to use it (the password would cross the"
            " network unencrypted)"
        )
    if announced:
        return announced[0]
    return f"{scheme}://{_bracketed(http.hostname)}:{DEFAULT_PORTS[scheme]}"


def _bracketed(host: str | None) -> str:
    host = host or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _stomp_user(args: argparse.Namespace, named: str | None) -> str:
    given: str | None = args.username or named
    if given:
        return given
    url = url_of(args)
    login = Credentials().get(url)
    if login is None:
        raise CliError(
            ErrorCode.NOT_AUTHENTICATED,
            f"who should log in? give --username, or run: {login_hint(url)}",
        )
    return login.username


def _stomp_password(from_stdin: bool) -> str:
    """The password: a line of stdin, else ``$BUZON_PASSWORD``, else asked at the terminal."""
    from_env = None if from_stdin else os.environ.get("BUZON_PASSWORD")
    if from_env:
        return from_env
    return read_secret("password", stdin_flag="--password-stdin", from_stdin=from_stdin)


def same_broker(args: argparse.Namespace, stomp_url: str) -> bool:
    """Whether ``stomp_url`` is the broker's at the HTTP URL: the address it announced, or
    one given on its host (with several brokers, every one on its host). A secret for one
    may go to the other, never to another server."""
    if _given_stomp_url(args) is None:
        return True
    host = urlsplit(url_of(args)).hostname
    return all(address.host == host for address in parse_stomp_url(stomp_url).addresses)


def _saved_token(args: argparse.Namespace, stomp_url: str, username: str) -> str | None:
    """The token ``buzon user login`` kept for ``username``, if still valid and the STOMP
    address is that broker's (:func:`same_broker`)."""
    if not same_broker(args, stomp_url):
        return None
    http_url = url_of(args)
    login = Credentials().get(http_url)
    if login is None or login.username != username or login.expires_at <= datetime.now(UTC):
        return None
    return login.token


def stomp_login(args: argparse.Namespace) -> StompLogin:
    """Resolve the STOMP URL, user and password (or saved token) of a messaging command."""
    url, named = stomp_address(args)
    username = _stomp_user(args, named)
    secret = None
    if not args.password_stdin and not os.environ.get("BUZON_PASSWORD"):
        secret = _saved_token(args, url, username)
    if secret is None:
        secret = _stomp_password(args.password_stdin)
    return StompLogin(url, username, secret, ca_file_of(args, url))


def access_key(args: argparse.Namespace) -> str | None:
    """``--access-key``, or a line of stdin with ``--access-key-stdin`` (read after the
    password, so call this after :func:`stomp_login`)."""
    if args.access_key_stdin:
        return read_secret("access key", stdin_flag="--access-key-stdin", from_stdin=True)
    key: str | None = args.access_key
    return key
