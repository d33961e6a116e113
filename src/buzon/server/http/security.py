"""Who is calling: ``Authorization: Bearer <token>`` (from login) or HTTP Basic (scripts).

Access keys over HTTP: a request presents ``X-Access-Key`` for a protected destination.
With a bearer token the accepted key is remembered for that token and destination (a
token is the HTTP counterpart of a STOMP connection), so the argon2id check runs once per
login rather than once per message. Basic authentication has no such session: every
request checks its password and its key.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from buzon.auth import Action, Principal
from buzon.auth.tokens import token_hash
from buzon.errors import AuthenticationFailed, ErrorCode
from buzon.server.access_gate import admit, needs_key
from buzon.server.context import ServerContext
from buzon.store import DestinationRecord


class _Utf8Basic(HTTPBasic):
    """HTTP Basic with UTF-8 credentials (RFC 7617's ``charset="UTF-8"``).

    FastAPI's own decodes them as ASCII, which refuses any password with an accent.
    """

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        scheme, _, param = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, colon, password = (
                b64decode(param.strip(), validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError, binascii.Error):
            colon = ""
        if not colon:
            raise AuthenticationFailed(ErrorCode.NOT_AUTHENTICATED, "malformed Basic credentials")
        return HTTPBasicCredentials(username=username, password=password)


_bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/sessions")
_basic = _Utf8Basic(
    auto_error=False, scheme_name="HTTPBasic", description="username and password, for scripts"
)


def header_text(value: str) -> str:
    """A header value as the client meant it: HTTP hands over raw bytes as latin-1, so a
    UTF-8 value (an access key with an accent) is decoded again."""
    try:
        return value.encode("latin-1").decode()
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


MAX_REMEMBERED_GRANTS = 100_000


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request.

    Attributes:
        principal: who.
        token_hash: the hash of their bearer token, or None with Basic authentication.
        address: the client's IP, for the limits on wrong access keys.
    """

    principal: Principal
    token_hash: str | None
    address: str


def context(request: Request) -> ServerContext:
    """The server state the app was built with."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServerContext, Depends(context)]


async def _caller(
    request: Request,
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    basic: Annotated[HTTPBasicCredentials | None, Security(_basic)],
) -> Caller | None:
    address = request.client.host if request.client else "?"
    if bearer is not None:
        principal = await ctx.accounts.principal_for_token(bearer.credentials)
        return Caller(principal, token_hash(bearer.credentials), address)
    if basic is not None:
        principal = await ctx.accounts.authenticate(basic.username, basic.password, address)
        return Caller(principal, None, address)
    return None


async def _required(caller: Annotated[Caller | None, Depends(_caller)]) -> Caller:
    if caller is None:
        raise AuthenticationFailed(
            ErrorCode.NOT_AUTHENTICATED, "send 'Authorization: Bearer <token>' or Basic"
        )
    return caller


OptionalCaller = Annotated[Caller | None, Depends(_caller)]
"""The caller when credentials were sent, else None (registration, health)."""

CurrentCaller = Annotated[Caller, Depends(_required)]
"""The caller; a request without credentials gets 401."""


Grant = tuple[str, str, str]
"""A token, a destination id and the hash of the access key it presented."""


class TokenGrants:
    """Which tokens presented which destination's access key; bounded LRU.

    A grant names the key's hash: once the key changes (here, or on another node of a
    cluster) or the destination is deleted and made again, the live record no longer
    matches it, so it grants nothing and is forgotten in time.
    """

    def __init__(self, bound: int = MAX_REMEMBERED_GRANTS) -> None:
        self._bound = bound
        self._granted: OrderedDict[Grant, None] = OrderedDict()

    def __contains__(self, grant: Grant) -> bool:
        if grant in self._granted:
            self._granted.move_to_end(grant)
            return True
        return False

    def add(self, grant: Grant) -> None:
        self._granted[grant] = None
        if len(self._granted) > self._bound:
            self._granted.popitem(last=False)


class _CallerGrants:
    """The grants of one request's caller for one destination: remembered per bearer
    token and key hash (see :class:`TokenGrants`), for this request only with Basic."""

    __slots__ = ("_key_hash", "_passed", "_remembered", "_token_hash")

    def __init__(self, remembered: TokenGrants, caller: Caller, key_hash: str | None) -> None:
        self._remembered = remembered
        self._token_hash = caller.token_hash
        self._key_hash = key_hash
        self._passed = False

    def _grant_of(self, destination_id: str) -> Grant | None:
        if self._token_hash is None or self._key_hash is None:
            return None
        return (self._token_hash, destination_id, self._key_hash)

    def granted(self, destination_id: str) -> bool:
        if self._passed:
            return True
        grant = self._grant_of(destination_id)
        return grant is not None and grant in self._remembered

    def grant(self, destination_id: str) -> None:
        self._passed = True
        grant = self._grant_of(destination_id)
        if grant is not None:
            self._remembered.add(grant)


async def grants_for(
    ctx: ServerContext,
    caller: Caller,
    record: DestinationRecord,
    action: Action,
    key: str | None,
    remembered: TokenGrants,
) -> frozenset[str]:
    """The destination ids ``caller`` may use for ``action`` without a key in the engine.

    Passes the access gate when a key is needed and was presented (raising AccessDenied
    ACCESS_KEY_WRONG or AuthenticationFailed TOO_MANY_ATTEMPTS); with no key, returns no
    grant and the engine answers ACCESS_KEY_REQUIRED.
    """
    grants = _CallerGrants(remembered, caller, record.key_hash)
    if needs_key(caller.principal, action, record, grants):
        if key is None:
            return frozenset()
        await admit(
            ctx.resources, caller.principal, record, header_text(key), caller.address, grants
        )
    return frozenset({record.id}) if grants.granted(record.id) else frozenset()
