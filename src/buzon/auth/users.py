"""Accounts: registration, login, tokens and the admin's user management.

Every login, over STOMP or HTTP, goes through :meth:`Accounts.authenticate`: a valid token
of the named user (where tokens are accepted) signs in at once, never limited; anything else
passes the failure limits (per user name and source address, see
:mod:`buzon.auth.ratelimit`), then runs one argon2id verification whether or not the user
exists (an unknown name is checked against a dummy hash), so neither the answer nor its
timing tells which of the two fields was wrong. Only a correct password learns that an
account is disabled.

Disabling or deleting a user revokes their tokens and calls the ``on_blocked`` callbacks
(the server closes their connections). Taking the admin role away calls the
``on_demoted`` callbacks: the server closes their connections too, since what those
connections subscribed to was allowed by the old role.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from buzon.auth.access import Principal, fingerprint
from buzon.auth.passwords import SecretHasher
from buzon.auth.ratelimit import GuessLimiter, GuessLimits
from buzon.auth.tokens import TOKEN_PREFIX, Tokens
from buzon.errors import AccessDenied, AuthenticationFailed, AuthError, ErrorCode, StoreError
from buzon.store.base import Store
from buzon.store.records import Role, UserRecord

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")
USERNAME_RULE = (
    "3 to 32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter"
    " or digit"
)
MIN_PASSWORD = 8
"""NIST SP 800-63B's minimum for user-chosen secrets."""
MAX_PASSWORD = 1024
"""Far above any passphrase; bounds the work a single login can ask of argon2."""


def principal_of(user: UserRecord) -> Principal:
    """The acting identity of a stored user."""
    return Principal(user.id, user.name, user.role, fingerprint(user.password_hash))


class Accounts:
    """Users and their sessions, on top of a Store.

    Args:
        store: where users and tokens live.
        hasher: argon2id, off the event loop.
        tokens: bearer tokens.
        registration_open: whether anyone may register (admins always may create users).
        limits: failed-login limits (per user name and source address, and per address).
        clock: Unix time, for ``created_at``.
        monotonic: for the waits between failed logins.
    """

    def __init__(
        self,
        store: Store,
        hasher: SecretHasher,
        tokens: Tokens,
        *,
        registration_open: bool = True,
        limits: GuessLimits | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self.tokens = tokens
        self.registration_open = registration_open
        self._clock = clock
        self.limiter = GuessLimiter(limits, clock=monotonic)
        self.on_blocked: list[Callable[[str], None]] = []
        self.on_demoted: list[Callable[[str], None]] = []

    # -- accounts ------------------------------------------------------------------------

    async def ensure_admin(self, name: str, password: str) -> bool:
        """Create the first admin unless a user of that name exists (never overwritten,
        also when another node of a cluster creates it at the same moment).

        Returns:
            True if the account was created now.

        Raises:
            AuthError: INVALID_USERNAME or WEAK_PASSWORD.
        """
        if await self._store.user_by_name(name) is not None:
            return False
        try:
            await self._create(name, password, Role.ADMIN)
        except StoreError as exc:
            if exc.code is not ErrorCode.USERNAME_TAKEN:
                raise
            return False  # another node of a cluster created it at the same moment
        return True

    async def register(
        self, name: str, password: str, *, by: Principal | None = None, role: Role = Role.USER
    ) -> UserRecord:
        """Register a user: anyone while registration is open, else an admin.

        Args:
            name: the login name.
            password: the password (only its hash is kept).
            by: who asks, if logged in; an admin may also pick the ``role``.
            role: the new user's role (admins only may give ``admin``).

        Raises:
            AuthError: REGISTRATION_CLOSED, ACCESS_DENIED (a non-admin asked for admin),
                INVALID_USERNAME, WEAK_PASSWORD.
            StoreError: USERNAME_TAKEN.
        """
        is_admin = by is not None and by.is_admin
        if not (self.registration_open or is_admin):
            raise AccessDenied(ErrorCode.REGISTRATION_CLOSED, "ask an admin to create your account")
        if role is Role.ADMIN and not is_admin:
            raise AccessDenied(ErrorCode.ACCESS_DENIED, "only an admin may create admins")
        return await self._create(name, password, role)

    async def _create(self, name: str, password: str, role: Role) -> UserRecord:
        check_username(name)
        check_password(name, password)
        if await self._store.user_by_name(name) is not None:
            raise StoreError(ErrorCode.USERNAME_TAKEN, f"{name!r} is taken")
        user = UserRecord(
            id=uuid.uuid4().hex,
            name=name,
            password_hash=await self._hasher.hash(password),
            role=role,
            disabled=False,
            created_at=self._clock(),
        )
        await self._store.add_user(user)
        return user

    # -- logging in ----------------------------------------------------------------------

    async def authenticate(
        self, name: str | None, password: str | None, address: str, *, token: bool = False
    ) -> Principal:
        """Check a login from ``address`` (a client IP).

        Args:
            name: the user name.
            password: the password; with ``token``, a bearer token of that user's (from
                :meth:`login`) is taken instead, so a client that logged in over HTTP, or
                opens thousands of connections, pays for one argon2 check rather than one
                per connection. The token is looked up before any limit, so a valid one is
                never refused for others' failures. A password that merely looks like a
                token still works.
            address: the client's IP, for the failure limits.
            token: accept a bearer token as the password.

        Raises:
            AuthenticationFailed: AUTH_FAILED (wrong or unknown, never which),
                TOO_MANY_ATTEMPTS (``detail`` says when to retry), ACCOUNT_DISABLED (only
                after a correct password).
        """
        name = name or ""
        password = password or ""
        if token and password.startswith(TOKEN_PREFIX):
            user_id = await self.tokens.user_id(password)
            user = None if user_id is None else await self._store.user_by_id(user_id)
            if user is not None and user.name == name:
                return self._signed_in(user)
        # A name longer than any valid one is counted under its first 65 characters, which
        # name no account: a limiter key costs at most that much memory.
        async with self.limiter.attempt(name[:65], address) as attempt:
            user = None
            if len(name) <= 64 and len(password) <= MAX_PASSWORD:
                try:
                    user = await self._store.user_by_name(name)
                except StoreError:
                    attempt.undecided()
                    raise
            ok = await self._hasher.verify(user.password_hash if user else None, password)
            if user is None or not ok:
                raise AuthenticationFailed()
            attempt.succeeded()
        return self._signed_in(user)

    def _signed_in(self, user: UserRecord) -> Principal:
        """The principal of a user who proved who they are, unless disabled."""
        if user.disabled:
            raise AuthenticationFailed(ErrorCode.ACCOUNT_DISABLED)
        return principal_of(user)

    async def login(self, name: str, password: str, address: str) -> tuple[str, float]:
        """Authenticate and issue a bearer token; return it and its expiry (Unix time)."""
        principal = await self.authenticate(name, password, address)
        return await self.tokens.issue(principal.id)

    async def principal_for_token(self, token: str) -> Principal:
        """The principal a bearer token stands for.

        Raises:
            AuthenticationFailed: NOT_AUTHENTICATED (unknown, revoked or expired token, or
                a disabled or deleted user).
        """
        user_id = await self.tokens.user_id(token)
        user = None if user_id is None else await self._store.user_by_id(user_id)
        if user is None or user.disabled:
            raise AuthenticationFailed(ErrorCode.NOT_AUTHENTICATED, "invalid or expired token")
        return principal_of(user)

    # -- administration ------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        """The user with that id, or None (for showing owners)."""
        return await self._store.user_by_id(user_id)

    async def users(self, by: Principal) -> list[UserRecord]:
        """Every user (admins only).

        Raises:
            AccessDenied: ``by`` is not an admin.
        """
        _require_admin(by)
        return await self._store.users()

    async def update(
        self, by: Principal, name: str, *, disabled: bool | None = None, role: Role | None = None
    ) -> UserRecord:
        """Enable or disable a user, or change their role (admins only).

        Disabling calls ``on_blocked``; taking the admin role away calls ``on_demoted``.

        Raises:
            AccessDenied: ``by`` is not an admin.
            AuthError: USER_NOT_FOUND; LAST_ADMIN when it would leave no enabled admin.
        """
        _require_admin(by)
        user = await self._named(name)
        updated = replace(
            user,
            disabled=user.disabled if disabled is None else disabled,
            role=user.role if role is None else role,
        )
        if _is_active_admin(user) and not _is_active_admin(updated):
            await self._keep_an_admin(user)
        await self._store.update_user(updated)
        if updated.disabled and not user.disabled:
            self._blocked(user.id)
        elif user.role is Role.ADMIN and updated.role is not Role.ADMIN:
            for callback in self.on_demoted:
                callback(user.id)
        return updated

    async def delete(self, by: Principal, name: str) -> None:
        """Delete a user and their tokens (admins only); their destinations stay.

        Raises:
            AccessDenied: ``by`` is not an admin.
            AuthError: USER_NOT_FOUND; LAST_ADMIN.
        """
        _require_admin(by)
        user = await self._named(name)
        if _is_active_admin(user):
            await self._keep_an_admin(user)
        await self._store.delete_user(user.id)
        self._blocked(user.id)

    async def revalidate(
        self, principals: Sequence[Principal]
    ) -> list[tuple[ErrorCode, str] | None]:
        """Why each principal of an open connection must log in again, as the store says
        now, or None: for changes made outside this process (``buzon user set-password``
        on the data directory), which no callback announces.
        """
        users = {user.id: user for user in await self._store.users()}
        return [_stale(principal, users.get(principal.id)) for principal in principals]

    async def _named(self, name: str) -> UserRecord:
        user = await self._store.user_by_name(name)
        if user is None:
            raise AuthError(ErrorCode.USER_NOT_FOUND, f"no user {name[:64]!r}")
        return user

    async def _keep_an_admin(self, leaving: UserRecord) -> None:
        others = [u for u in await self._store.users() if _is_active_admin(u)]
        if [u.id for u in others] == [leaving.id]:
            raise AuthError(ErrorCode.LAST_ADMIN, "make another user admin first")

    def _blocked(self, user_id: str) -> None:
        for callback in self.on_blocked:
            callback(user_id)


def check_username(name: str) -> None:
    """Raise AuthError(INVALID_USERNAME) unless ``name`` follows :data:`USERNAME_RULE`."""
    if not USERNAME.fullmatch(name):
        raise AuthError(ErrorCode.INVALID_USERNAME, f"usernames are {USERNAME_RULE}")


def check_password(name: str, password: str) -> None:
    """Raise AuthError(WEAK_PASSWORD) for a password too short, too long or the username."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AuthError(
            ErrorCode.WEAK_PASSWORD,
            f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        )
    if password.casefold() == name.casefold():
        raise AuthError(ErrorCode.WEAK_PASSWORD, "the password must differ from the username")


def _stale(principal: Principal, user: UserRecord | None) -> tuple[ErrorCode, str] | None:
    if user is None or user.disabled:
        return ErrorCode.ACCOUNT_DISABLED, "the account was disabled or deleted"
    if principal.is_admin and user.role is not Role.ADMIN:
        return ErrorCode.PERMISSIONS_CHANGED, "the account is no longer an admin"
    if principal.credential not in (None, fingerprint(user.password_hash)):
        return ErrorCode.PERMISSIONS_CHANGED, "the password changed"
    return None


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise AccessDenied(ErrorCode.ACCESS_DENIED, "admins only")


def _is_active_admin(user: UserRecord) -> bool:
    return user.role is Role.ADMIN and not user.disabled
