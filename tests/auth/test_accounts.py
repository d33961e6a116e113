"""Accounts on a MemoryStore: registration rules, login, rate limits, tokens, admin rules."""

from __future__ import annotations

import pytest

from buzon.auth import Accounts, Backoff, GuessLimits, Principal, SecretHasher, Tokens
from buzon.auth.tokens import token_hash
from buzon.errors import AuthenticationFailed, AuthError, ErrorCode, StoreError
from buzon.store import MemoryStore, Role


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(hasher: SecretHasher, clock: Clock) -> Accounts:
    store = MemoryStore()
    return Accounts(
        store,
        hasher,
        Tokens(store, ttl=60.0, clock=clock),
        limits=GuessLimits(
            per_key=Backoff(free=3, first=10.0, cap=60.0, forget=600.0),
            per_address=Backoff(free=5, first=10.0, cap=60.0, forget=600.0),
        ),
        clock=clock,
        monotonic=clock,
    )


async def admin(accounts: Accounts) -> Principal:
    await accounts.ensure_admin("root", "root-password")
    return await accounts.authenticate("root", "root-password", "10.0.0.1")


async def test_secrets_are_argon2id_salted_and_verify(hasher: SecretHasher) -> None:
    first, second = await hasher.hash("correct horse"), await hasher.hash("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second
    assert "correct horse" not in first
    assert await hasher.verify(first, "correct horse")
    assert not await hasher.verify(first, "correct hors")
    assert not await hasher.verify("not a hash", "correct horse")
    assert not await hasher.verify(None, "anything")


@pytest.mark.parametrize(
    ("name", "password", "code"),
    [
        ("ab", "long enough", ErrorCode.INVALID_USERNAME),
        ("Alice", "long enough", ErrorCode.INVALID_USERNAME),
        ("-alice", "long enough", ErrorCode.INVALID_USERNAME),
        ("a" * 33, "long enough", ErrorCode.INVALID_USERNAME),
        ("al ice", "long enough", ErrorCode.INVALID_USERNAME),
        ("alice", "short", ErrorCode.WEAK_PASSWORD),
        ("alice", "x" * 1025, ErrorCode.WEAK_PASSWORD),
        ("alicealice", "ALICEALICE", ErrorCode.WEAK_PASSWORD),
    ],
)
async def test_registration_rules_explain_themselves(
    accounts: Accounts, name: str, password: str, code: ErrorCode
) -> None:
    with pytest.raises(AuthError) as caught:
        await accounts.register(name, password)
    assert caught.value.code is code
    assert caught.value.detail  # says what the rule is


async def test_register_login_and_names_are_unique(accounts: Accounts) -> None:
    user = await accounts.register("alice", "alice-password")
    assert user.role is Role.USER
    assert user.password_hash.startswith("$argon2id$")
    principal = await accounts.authenticate("alice", "alice-password", "10.0.0.2")
    assert (principal.id, principal.name, principal.is_admin) == (user.id, "alice", False)
    with pytest.raises(StoreError) as taken:
        await accounts.register("alice", "another-password")
    assert taken.value.code is ErrorCode.USERNAME_TAKEN


async def test_wrong_password_and_unknown_user_fail_alike(accounts: Accounts) -> None:
    await accounts.register("alice", "alice-password")
    failures = []
    for name, password in [("alice", "wrong-password"), ("nobody", "alice-password")]:
        with pytest.raises(AuthenticationFailed) as caught:
            await accounts.authenticate(name, password, "10.0.0.3")
        failures.append((caught.value.code, caught.value.detail))
    assert failures == [(ErrorCode.AUTH_FAILED, ""), (ErrorCode.AUTH_FAILED, "")]


async def test_failures_slow_the_user_from_that_address_only_with_growing_waits(
    accounts: Accounts, clock: Clock
) -> None:
    await accounts.register("alice", "alice-password")
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("alice", "guess", "10.0.0.4")
    waits = []
    for _ in range(4):
        with pytest.raises(AuthenticationFailed) as slowed:
            await accounts.authenticate("alice", "alice-password", "10.0.0.4")
        assert slowed.value.code is ErrorCode.TOO_MANY_ATTEMPTS
        assert slowed.value.retry_after is not None
        waits.append(slowed.value.retry_after)
        clock.now += slowed.value.retry_after
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate("alice", "guess", "10.0.0.4")
    assert waits == pytest.approx([10.0, 20.0, 40.0, 60.0])
    # never locked out from everywhere: the right password from another address works,
    # and so does her token from the guesser's address
    token, _ = await accounts.login("alice", "alice-password", "10.0.0.7")
    assert (await accounts.authenticate("alice", token, "10.0.0.4", token=True)).name == "alice"
    clock.now += 60
    assert (await accounts.authenticate("alice", "alice-password", "10.0.0.4")).name == "alice"


async def test_an_address_over_its_budget_is_slowed_without_shutting_anyone_out(
    accounts: Accounts,
) -> None:
    for n in range(7):
        with pytest.raises(AuthenticationFailed) as failed:
            await accounts.authenticate(f"made-up-{n}", "guess", "10.9.9.9")
        assert failed.value.code is ErrorCode.AUTH_FAILED
    await accounts.register("carol", "carol-password")
    # carol never failed from there: her right password is checked and accepted
    assert (await accounts.authenticate("carol", "carol-password", "10.9.9.9")).name == "carol"
    # one failure of her own and the address's wait applies to her there, not elsewhere
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("carol", "guess", "10.9.9.9")
    with pytest.raises(AuthenticationFailed) as limited:
        await accounts.authenticate("carol", "carol-password", "10.9.9.9")
    assert limited.value.code is ErrorCode.TOO_MANY_ATTEMPTS
    assert limited.value.retry_after == pytest.approx(40.0)
    assert (await accounts.authenticate("carol", "carol-password", "10.0.0.1")).name == "carol"


async def test_tokens_expire_and_revoke(accounts: Accounts, clock: Clock) -> None:
    await accounts.register("alice", "alice-password")
    token, expires_at = await accounts.login("alice", "alice-password", "10.0.0.8")
    assert expires_at == clock.now + 60
    assert (await accounts.principal_for_token(token)).name == "alice"
    clock.now += 61
    with pytest.raises(AuthenticationFailed) as expired:
        await accounts.principal_for_token(token)
    assert expired.value.code is ErrorCode.NOT_AUTHENTICATED
    token, _ = await accounts.login("alice", "alice-password", "10.0.0.8")
    await accounts.tokens.revoke(token_hash(token))
    with pytest.raises(AuthenticationFailed):
        await accounts.principal_for_token(token)
    for forged in ("", "bzt_", "bzt_" + "A" * 43, "x" * 10_000):
        with pytest.raises(AuthenticationFailed):
            await accounts.principal_for_token(forged)


async def test_a_token_signs_in_its_own_user_where_tokens_are_accepted(
    accounts: Accounts, clock: Clock
) -> None:
    await accounts.register("alice", "alice-password")
    await accounts.register("bob", "bob-password-1")
    token, _ = await accounts.login("alice", "alice-password", "10.0.0.20")
    signed_in = await accounts.authenticate("alice", token, "10.0.0.20", token=True)
    assert signed_in.name == "alice"
    # only where the caller accepts tokens, and only for the token's own user
    for name, accept in (("alice", False), ("bob", True)):
        with pytest.raises(AuthenticationFailed) as refused:
            await accounts.authenticate(name, token, "10.0.0.20", token=accept)
        assert refused.value.code is ErrorCode.AUTH_FAILED
    clock.now += 61
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("alice", token, "10.0.0.21", token=True)


async def test_a_password_that_looks_like_a_token_still_works(accounts: Accounts) -> None:
    await accounts.register("carol", "bzt_carols-own-password")
    signed_in = await accounts.authenticate(
        "carol", "bzt_carols-own-password", "10.0.0.22", token=True
    )
    assert signed_in.name == "carol"


async def test_first_admin_is_created_once_and_never_overwritten(accounts: Accounts) -> None:
    assert await accounts.ensure_admin("root", "root-password")
    assert not await accounts.ensure_admin("root", "other-password")
    principal = await accounts.authenticate("root", "root-password", "10.0.0.9")
    assert principal.is_admin


async def test_closed_registration_admits_only_admins(accounts: Accounts) -> None:
    boss = await admin(accounts)
    accounts.registration_open = False
    with pytest.raises(AuthError) as closed:
        await accounts.register("alice", "alice-password")
    assert closed.value.code is ErrorCode.REGISTRATION_CLOSED
    created = await accounts.register("alice", "alice-password", by=boss)
    assert created.name == "alice"


async def test_only_admins_create_admins(accounts: Accounts) -> None:
    boss = await admin(accounts)
    await accounts.register("alice", "alice-password")
    alice = await accounts.authenticate("alice", "alice-password", "10.0.0.10")
    with pytest.raises(AuthError) as refused:
        await accounts.register("mallory", "mallory-password", by=alice, role=Role.ADMIN)
    assert refused.value.code is ErrorCode.ACCESS_DENIED
    made = await accounts.register("deputy", "deputy-password", by=boss, role=Role.ADMIN)
    assert made.role is Role.ADMIN


async def test_disable_and_delete_block_the_user(accounts: Accounts) -> None:
    boss = await admin(accounts)
    blocked: list[str] = []
    accounts.on_blocked.append(blocked.append)
    alice = await accounts.register("alice", "alice-password")
    token, _ = await accounts.login("alice", "alice-password", "10.0.0.11")
    await accounts.update(boss, "alice", disabled=True)
    assert blocked == [alice.id]
    with pytest.raises(AuthenticationFailed) as disabled:
        await accounts.authenticate("alice", "alice-password", "10.0.0.11")
    assert disabled.value.code is ErrorCode.ACCOUNT_DISABLED
    with pytest.raises(AuthenticationFailed):
        await accounts.principal_for_token(token)
    await accounts.update(boss, "alice", disabled=False)
    assert (await accounts.principal_for_token(token)).name == "alice"
    await accounts.delete(boss, "alice")
    assert blocked == [alice.id, alice.id]
    with pytest.raises(AuthenticationFailed):
        await accounts.principal_for_token(token)
    again = await accounts.register("alice", "alice-password")
    assert again.id != alice.id  # a new account: nothing of the old one carries over


async def test_admin_rules(accounts: Accounts) -> None:
    boss = await admin(accounts)
    await accounts.register("alice", "alice-password")
    alice = await accounts.authenticate("alice", "alice-password", "10.0.0.12")
    for attempt in (
        accounts.users(alice),
        accounts.update(alice, "root", disabled=True),
        accounts.delete(alice, "root"),
    ):
        with pytest.raises(AuthError) as denied:
            await attempt
        assert denied.value.code is ErrorCode.ACCESS_DENIED
    for attempt in (
        accounts.delete(boss, "root"),
        accounts.update(boss, "root", disabled=True),
        accounts.update(boss, "root", role=Role.USER),
    ):
        with pytest.raises(AuthError) as last:
            await attempt
        assert last.value.code is ErrorCode.LAST_ADMIN
    with pytest.raises(AuthError) as missing:
        await accounts.delete(boss, "nobody")
    assert missing.value.code is ErrorCode.USER_NOT_FOUND
    assert [u.name for u in await accounts.users(boss)] == ["alice", "root"]
    await accounts.update(boss, "alice", role=Role.ADMIN)
    await accounts.delete(boss, "root")  # alice is an admin now


async def test_logins_the_store_could_not_judge_count_for_nothing(
    hasher: SecretHasher, clock: Clock
) -> None:
    """A client retrying its login through a store outage is not locked out for it."""

    class Failing(MemoryStore):
        down = False

        async def user_by_name(self, name: str):  # type: ignore[no-untyped-def]
            if self.down:
                raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "down")
            return await super().user_by_name(name)

    store = Failing()
    limits = GuessLimits(
        per_key=Backoff(free=3, first=10.0, cap=60.0, forget=600.0),
        per_address=Backoff(free=5, first=10.0, cap=60.0, forget=600.0),
    )
    accounts = Accounts(
        store,
        hasher,
        Tokens(store, ttl=60.0, clock=clock),
        limits=limits,
        clock=clock,
        monotonic=clock,
    )
    await accounts.register("alice", "alice-password")
    store.down = True
    for _ in range(10):
        with pytest.raises(StoreError):
            await accounts.authenticate("alice", "alice-password", "10.0.0.9")
    store.down = False
    assert (await accounts.authenticate("alice", "alice-password", "10.0.0.9")).name == "alice"
