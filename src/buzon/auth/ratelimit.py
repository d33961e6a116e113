"""Guess limits: how often a secret (a password, an access key) may be tried.

Failures are counted per *key*, the pair of what is guessed (a user name, a destination)
and the source address guessing it. A key may fail a few times for free; after that each
failure doubles the wait before its next attempt, up to a bound (:class:`Backoff`). A key
is never refused from everywhere: failures from one address never delay the same name
tried from another one.

Each source address also has a failure budget. Past it, every key of that address that has
failures of its own waits at least as long as the address's ladder says, so an address
spraying guesses over many names is slowed on each of them. A key with no failures of its
own is always tried: the right password of an account nobody guessed from that address
gets in, however many made-up names were tried there (people behind one NAT or proxy). The
price is one verification per new name from such an address; each costs an argon2id run
(at most two at once), and a made-up name gains the guesser nothing.

Attempts on one key overlap only while all of them failing would still cost no wait (a
client opening a pool of connections with its password); past that they take turns, so a
guesser opening many connections at once gets no more tries than one connection would. An
attempt counts as failed unless it is marked as a success, including one cut short when its
peer went away.

Memory is bounded: each table keeps at most ``max_keys`` keys and forgets the one whose
last failure is oldest, and IPv6 peers are counted per /64 network (what one host
usually holds), so cycling addresses or names costs the tables their bound, never more.
Forgetting a key gives a guesser no more than a fresh address would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field

from buzon.errors import AuthenticationFailed, ErrorCode

IPV6_GROUP = 64
"""IPv6 peers are counted per network of this prefix length."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """A ladder of waits after failures.

    Attributes:
        free: failures that cost no wait.
        first: seconds of wait after the first failure past ``free``; each further failure
            doubles it.
        cap: the longest wait, in seconds.
        forget: seconds after its last failure when a key's failures are forgotten.
    """

    free: int
    first: float
    cap: float
    forget: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the last of ``failures`` failures."""
        over = failures - self.free
        if over <= 0:
            return 0.0
        return min(self.cap, self.first * 2.0 ** min(over - 1, 64))


@dataclass(frozen=True, slots=True)
class GuessLimits:
    """The ladders of one kind of secret.

    Attributes:
        per_key: per (name or destination, source address): 5 free failures (a person
            mistyping never waits), then 1 s, 2 s, 4 s ... up to 5 minutes, forgotten an
            hour after the last failure or at once after a success.
        per_address: per source address over every name: 50 free failures, then the same
            ladder, applied to the address's keys that failed themselves.
        max_keys: keys each table holds at most.
    """

    per_key: Backoff = field(default_factory=lambda: Backoff(5, 1.0, 300.0, 3600.0))
    per_address: Backoff = field(default_factory=lambda: Backoff(50, 1.0, 300.0, 3600.0))
    max_keys: int = 100_000


def source_of(address: str) -> str:
    """The address as the limits count it: IPv6 by /64 network, IPv4 (also IPv4-mapped)
    as is; anything that is not an IP (a Unix socket) unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_GROUP), strict=False))
    return str(ip)


class _Failures:
    __slots__ = ("count", "last")

    def __init__(self, last: float) -> None:
        self.count = 0
        self.last = last


class FailureTable:
    """Failures per key on one :class:`Backoff` ladder, at most ``max_keys`` keys.

    Args:
        backoff: the ladder (its ``forget`` decides when a key is dropped).
        max_keys: past it the key whose last failure is oldest is forgotten.
        clock: seconds, monotonic.
    """

    def __init__(self, backoff: Backoff, max_keys: int, clock: Callable[[], float]) -> None:
        self.backoff = backoff
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[Hashable, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: Hashable) -> tuple[int, float] | None:
        """``key``'s failure count and the time of its last failure, or None."""
        failures = self._keys.get(key)
        if failures is None:
            return None
        if self._clock() - failures.last >= self.backoff.forget:
            del self._keys[key]
            return None
        return failures.count, failures.last

    def failed(self, key: Hashable) -> None:
        """Count one failure for ``key`` now."""
        now = self._clock()
        if self.get(key) is None:
            self._keys[key] = _Failures(now)
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        failures = self._keys[key]
        failures.count += 1
        failures.last = now

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s failures."""
        self._keys.pop(key, None)


class Attempt:
    """One admitted guess: it counts as failed unless :meth:`succeeded` or
    :meth:`undecided` is called."""

    __slots__ = ("ok", "void")

    def __init__(self) -> None:
        self.ok = False
        self.void = False

    def succeeded(self) -> None:
        """The secret was right: the key's failures are forgotten."""
        self.ok = True

    def undecided(self) -> None:
        """The guess could not be judged (the store failed): it counts for nothing, so a
        client retrying through an outage is not locked out for it."""
        self.void = True


class _Turn:
    """The attempts of one key: how many are being checked, who waits to start, and how
    many hold this record (it is dropped when none does)."""

    __slots__ = ("checking", "users", "waiting")

    def __init__(self) -> None:
        self.checking = 0
        self.users = 0
        self.waiting: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        """Until an attempt of this key ends."""
        ended = asyncio.get_running_loop().create_future()
        self.waiting.append(ended)
        await ended

    def ended(self) -> None:
        for waiter in self.waiting:
            if not waiter.done():
                waiter.set_result(None)
        self.waiting.clear()


class GuessLimiter:
    """Limits guesses of one kind of secret per (subject, source address).

    Args:
        limits: the ladders and the table bound.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self, limits: GuessLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        limits = limits or GuessLimits()
        self._clock = clock
        self.keys = FailureTable(limits.per_key, limits.max_keys, clock)
        self.addresses = FailureTable(limits.per_address, limits.max_keys, clock)
        self._turns: dict[tuple[str, str], _Turn] = {}

    def retry_after(self, subject: str, address: str) -> float | None:
        """Seconds until ``subject`` may be tried from ``address``, or None for now."""
        source = source_of(address)
        own = self.keys.get((subject, source))
        if own is None:
            return None
        count, last = own
        delay = self.keys.backoff.delay(count)
        shared = self.addresses.get(source)
        if shared is not None:
            delay = max(delay, self.addresses.backoff.delay(shared[0]))
        wait = last + delay - self._clock()
        return wait if wait > 0 else None

    @contextlib.asynccontextmanager
    async def attempt(self, subject: str, address: str) -> AsyncIterator[Attempt]:
        """Admit one guess of ``subject`` from ``address``, after the earlier ones of that key.

        Raises:
            AuthenticationFailed: TOO_MANY_ATTEMPTS, with the wait in ``retry_after``.
        """
        source = source_of(address)
        key = (subject, source)
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            while turn.checking and not self._may_overlap(key, source, turn.checking):
                await turn.wait()
            wait = self.retry_after(subject, address)
            if wait is not None:
                raise AuthenticationFailed(
                    ErrorCode.TOO_MANY_ATTEMPTS, f"retry in {math.ceil(wait)} s", wait
                )
            attempt = Attempt()
            turn.checking += 1
            try:
                yield attempt
            finally:
                turn.checking -= 1
                if attempt.ok:
                    self.keys.forget(key)
                elif not attempt.void:
                    self.keys.failed(key)
                    self.addresses.failed(source)
                turn.ended()
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[key]

    def _may_overlap(self, key: tuple[str, str], source: str, checking: int) -> bool:
        """Whether one more attempt may start beside ``checking`` others: only if all of
        them failing would still cost no wait, so overlapping gains nothing over turns."""
        own = self.keys.get(key)
        if self.keys.backoff.delay(checking + (own[0] if own else 0)) > 0:
            return False
        shared = self.addresses.get(source)
        return self.addresses.backoff.delay(checking + (shared[0] if shared else 0)) == 0
