"""The guess limiter: per (subject, source address) back-off, a per-address budget that never
shuts out a clean key, one attempt at a time per key, and bounded memory."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buzon.auth import Backoff, GuessLimiter, GuessLimits
from buzon.auth.ratelimit import source_of
from buzon.errors import AuthenticationFailed, ErrorCode
from tests.auth.test_accounts import Clock

PER_KEY = Backoff(free=2, first=1.0, cap=8.0, forget=100.0)
PER_ADDRESS = Backoff(free=4, first=2.0, cap=16.0, forget=100.0)
LIMITS = GuessLimits(per_key=PER_KEY, per_address=PER_ADDRESS)

SUBJECTS = st.sampled_from(["alice", "bob", "made-up"])
ADDRESSES = st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"])
# (subject, address, right secret?, seconds since the previous guess)
GUESSES = st.lists(
    st.tuples(SUBJECTS, ADDRESSES, st.booleans(), st.sampled_from([0.0, 0.5, 3.0, 20.0])),
    max_size=40,
)


async def guess(limiter: GuessLimiter, subject: str, address: str, right: bool) -> float | None:
    """One guess; None when it was admitted, else the wait the limiter asked for."""
    try:
        async with limiter.attempt(subject, address) as attempt:
            if right:
                attempt.succeeded()
    except AuthenticationFailed as refused:
        if refused.code is not ErrorCode.TOO_MANY_ATTEMPTS or refused.retry_after is None:
            raise
        return refused.retry_after
    return None


def replay(
    guesses: list[tuple[str, str, bool, float]], limits: GuessLimits = LIMITS
) -> tuple[GuessLimiter, list[float | None]]:
    """Run ``guesses`` on a fresh limiter; return it and each guess's outcome."""
    clock = Clock()
    limiter = GuessLimiter(limits, clock=clock)

    async def run() -> list[float | None]:
        outcomes = []
        for subject, address, right, after in guesses:
            clock.now += after
            outcomes.append(await guess(limiter, subject, address, right))
        return outcomes

    return limiter, asyncio.run(run())


@given(st.integers(min_value=0, max_value=200))
def test_the_wait_grows_by_doubling_and_is_bounded(failures: int) -> None:
    wait, next_wait = PER_KEY.delay(failures), PER_KEY.delay(failures + 1)
    assert 0.0 <= wait <= next_wait <= PER_KEY.cap
    if failures <= PER_KEY.free:
        assert wait == 0.0
    elif next_wait < PER_KEY.cap:
        assert next_wait == 2 * wait


@given(GUESSES, ADDRESSES)
def test_what_other_addresses_do_never_changes_an_addresss_outcomes(
    guesses: list[tuple[str, str, bool, float]], address: str
) -> None:
    """The guesses of one address get the same answers whatever happens elsewhere: an
    attacker's address never delays the victim at another one."""
    _, everything = replay(guesses)
    # the guesses of ``address`` alone, at the same times
    elapsed, kept, expected = 0.0, [], []
    for (subject, source, right, after), outcome in zip(guesses, everything, strict=True):
        elapsed += after
        if source == address:
            kept.append((subject, source, right, elapsed))
            expected.append(outcome)
            elapsed = 0.0
    _, alone = replay(kept)
    assert alone == expected


@given(GUESSES)
def test_a_key_without_failures_of_its_own_is_always_admitted(
    guesses: list[tuple[str, str, bool, float]],
) -> None:
    """However many guesses an address made for other names, a name it never got wrong
    (or got right since) is tried: the right password of someone behind the same NAT."""
    _, outcomes = replay(guesses)
    failed: set[tuple[str, str]] = set()
    for (subject, address, right, _), outcome in zip(guesses, outcomes, strict=True):
        key = (subject, source_of(address))
        if key not in failed:
            assert outcome is None
        if outcome is None:
            if right:
                failed.discard(key)
            else:
                failed.add(key)
        else:
            assert 0 < outcome <= max(PER_KEY.cap, PER_ADDRESS.cap)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.text(max_size=8), st.integers(0, 300)), min_size=1, max_size=60))
def test_memory_stays_within_the_bound_whatever_names_and_addresses_are_cycled(
    attempts: list[tuple[str, int]],
) -> None:
    limits = GuessLimits(per_key=PER_KEY, per_address=PER_ADDRESS, max_keys=8)
    guesses = [(name, f"10.1.{n // 256}.{n % 256}", False, 0.0) for name, n in attempts]
    limiter, _ = replay(guesses, limits)
    assert len(limiter.keys) <= 8
    assert len(limiter.addresses) <= 8
    assert not limiter._turns  # nothing is kept for attempts that finished


async def test_a_persistent_guesser_gets_a_bounded_number_of_tries() -> None:
    """Guessing as fast as the limiter allows for an hour: the free tries, one per step of
    the ladder, then one per ``cap``."""
    clock = Clock()
    limiter = GuessLimiter(GuessLimits(), clock=clock)
    tries, end = 0, clock.now + 3600
    while clock.now < end:
        wait = await guess(limiter, "victim", "192.0.2.7", right=False)
        if wait is None:
            tries += 1
        else:
            clock.now += wait
    ladder = GuessLimits().per_key
    steps = 9  # 1 s, 2 s ... 256 s before the 300 s cap
    assert tries <= ladder.free + steps + 3600 / ladder.cap + 1
    assert tries < 30


async def test_a_correct_guess_forgets_the_keys_failures() -> None:
    clock = Clock()
    limiter = GuessLimiter(LIMITS, clock=clock)
    for _ in range(PER_KEY.free + 1):
        assert await guess(limiter, "alice", "10.0.0.1", right=False) is None
    assert await guess(limiter, "alice", "10.0.0.1", right=True) == pytest.approx(1.0)
    clock.now += 1.0
    assert await guess(limiter, "alice", "10.0.0.1", right=True) is None
    assert limiter.retry_after("alice", "10.0.0.1") is None


async def test_simultaneous_guesses_of_one_key_get_no_more_tries_than_one_after_another() -> None:
    """Many connections at once get no more tries than one connection would."""
    limiter = GuessLimiter(LIMITS, clock=Clock())

    async def wrong() -> float | None:
        try:
            async with limiter.attempt("alice", "10.0.0.1"):
                await asyncio.sleep(0)  # the secret is checked off the loop
        except AuthenticationFailed as refused:
            return refused.retry_after
        return None

    outcomes = await asyncio.gather(*(wrong() for _ in range(20)))
    assert outcomes.count(None) == PER_KEY.free + 1

    checking, most = 0, 0

    async def right() -> float | None:
        nonlocal checking, most
        async with limiter.attempt("bob", "10.0.0.9") as attempt:
            checking += 1
            most = max(most, checking)
            await asyncio.sleep(0)
            checking -= 1
            attempt.succeeded()
        return None

    # a client opening a pool of connections with the right password is never refused,
    # and its logins overlap as far as they could all fail for free
    assert await asyncio.gather(*(right() for _ in range(20))) == [None] * 20
    assert most == PER_KEY.free + 1


async def test_an_attempt_cut_short_counts_as_failed() -> None:
    limiter = GuessLimiter(LIMITS, clock=Clock())
    for _ in range(PER_KEY.free + 1):
        with pytest.raises(ConnectionResetError):
            async with limiter.attempt("alice", "10.0.0.1"):
                raise ConnectionResetError("the peer went away")
    assert limiter.retry_after("alice", "10.0.0.1") == pytest.approx(1.0)


def test_ipv6_peers_count_per_64_network() -> None:
    assert source_of("2001:db8::1") == source_of("2001:db8::ffff:2") == "2001:db8::/64"
    assert source_of("2001:db8:0:1::1") != source_of("2001:db8::1")
    assert source_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_of("192.0.2.1") == "192.0.2.1"
