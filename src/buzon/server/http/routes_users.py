"""Accounts over HTTP: register, log in and out, who-am-I, and the admin's user management."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from buzon.auth import Principal
from buzon.errors import AuthenticationFailed, ErrorCode
from buzon.server.http.schemas import Credentials, NewUser, Session, User, UserPatch
from buzon.server.http.security import Ctx, CurrentCaller, OptionalCaller
from buzon.server.http.timefmt import utc
from buzon.store import UserRecord

router = APIRouter(tags=["users"])

UserName = Annotated[str, Path(max_length=64)]


def _user(record: UserRecord) -> User:
    return User(
        username=record.name,
        role=record.role,
        disabled=record.disabled,
        created_at=utc(record.created_at),
    )


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Register a user")
async def register(body: NewUser, ctx: Ctx, caller: OptionalCaller) -> User:
    """Anyone may register while registration is open; an admin may always create users,
    and only an admin may create admins."""
    by: Principal | None = None if caller is None else caller.principal
    record = await ctx.accounts.register(body.username, body.password, by=by, role=body.role)
    return _user(record)


@router.post("/sessions", status_code=status.HTTP_201_CREATED, summary="Log in")
async def login(body: Credentials, ctx: Ctx, request: Request) -> Session:
    """Exchange a username and password for a bearer token. Repeated failures from one
    address or for one username are refused for a while (429 with Retry-After)."""
    address = request.client.host if request.client else "?"
    token, expires_at = await ctx.accounts.login(body.username, body.password, address)
    return Session(token=token, expires_at=utc(expires_at))


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT, summary="Log out")
async def logout(ctx: Ctx, caller: CurrentCaller) -> Response:
    """Revoke the bearer token this request carries; STOMP and WebSocket connections that
    logged in with it as their passcode are closed."""
    if caller.token_hash is None:
        raise AuthenticationFailed(ErrorCode.NOT_AUTHENTICATED, "log out with a bearer token")
    await ctx.accounts.tokens.revoke(caller.token_hash)
    ctx.broker.close_sessions_with_token(
        caller.token_hash, ErrorCode.PERMISSIONS_CHANGED, "the token was revoked (logged out)"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/me", summary="Who am I")
async def me(ctx: Ctx, caller: CurrentCaller) -> User:
    record = await ctx.accounts.user(caller.principal.id)
    if record is None:  # deleted while this request ran
        raise AuthenticationFailed(ErrorCode.NOT_AUTHENTICATED, "the account no longer exists")
    return _user(record)


@router.get("/users", summary="List users (admin)")
async def list_users(ctx: Ctx, caller: CurrentCaller) -> list[User]:
    return [_user(record) for record in await ctx.accounts.users(caller.principal)]


@router.patch("/users/{name}", summary="Disable, enable or change the role of a user (admin)")
async def update_user(name: UserName, body: UserPatch, ctx: Ctx, caller: CurrentCaller) -> User:
    """Disabling a user closes their open connections; their tokens stop working. Taking
    the admin role away closes their open connections too (ERROR ``PERMISSIONS_CHANGED``)
    and gives back the messages they pulled: what they held was allowed by the old role."""
    record = await ctx.accounts.update(
        caller.principal, name, disabled=body.disabled, role=body.role
    )
    return _user(record)


@router.delete(
    "/users/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a user (admin)"
)
async def delete_user(name: UserName, ctx: Ctx, caller: CurrentCaller) -> Response:
    """Closes their connections and revokes their tokens; their queues and channels stay."""
    await ctx.accounts.delete(caller.principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
