"""Per-session staging of sends, acks and nacks until COMMIT.

Staged operations are checked when they are staged (bad destination, access, unknown ack
id), and again all together at commit before any is applied, so a commit applies all of
them in order or none. Nothing staged is visible anywhere (no destination created, no
message numbered) until the commit; ABORT and session close drop the lot.
"""

from __future__ import annotations

from dataclasses import dataclass

from buzon.broker.message import Headers, Outcome, PublishOptions
from buzon.errors import BrokerError, ErrorCode

_DETAIL_CHARS = 64


@dataclass(frozen=True, slots=True)
class StagedPublish:
    """A send waiting for its transaction's commit (checked when staged)."""

    destination: str
    headers: Headers
    body: bytes
    options: PublishOptions
    create: bool = True  # False: the commit never creates the destination (auto-create:false)


@dataclass(frozen=True, slots=True)
class StagedSettle:
    """A settlement (ACK, NACK) waiting for commit."""

    ack_id: str
    outcome: Outcome
    multiple: bool = False


StagedOperation = StagedPublish | StagedSettle


class Transactions:
    """The open transactions of one session.

    Args:
        max_open: transactions open at once.
        max_operations: operations staged in one transaction.
    """

    __slots__ = ("_max_open", "_max_operations", "_open")

    def __init__(self, max_open: int, max_operations: int) -> None:
        self._max_open = max_open
        self._max_operations = max_operations
        self._open: dict[str, list[StagedOperation]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def begin(self, name: str) -> None:
        """Open transaction ``name``.

        Raises:
            BrokerError: ``DUPLICATE_TRANSACTION`` if it is open already,
                ``LIMIT_EXCEEDED`` if the session has too many open.
        """
        if name in self._open:
            raise BrokerError(ErrorCode.DUPLICATE_TRANSACTION, _named(name))
        if len(self._open) >= self._max_open:
            raise BrokerError(
                ErrorCode.LIMIT_EXCEEDED, f"at most {self._max_open} open transactions"
            )
        self._open[name] = []

    def check(self, name: str) -> None:
        """Make sure transaction ``name`` is open and has room for one more operation.

        Raises:
            BrokerError: ``UNKNOWN_TRANSACTION`` or ``LIMIT_EXCEEDED``.
        """
        if len(self._staged(name)) >= self._max_operations:
            raise BrokerError(
                ErrorCode.LIMIT_EXCEEDED,
                f"at most {self._max_operations} operations per transaction",
            )

    def staged(self, name: str) -> list[StagedOperation]:
        """What transaction ``name`` staged so far, in order.

        Raises:
            BrokerError: ``UNKNOWN_TRANSACTION``.
        """
        return list(self._staged(name))

    def stage(self, name: str, operation: StagedOperation) -> None:
        """Append ``operation`` to transaction ``name`` (call :meth:`check` first)."""
        self._staged(name).append(operation)

    def finish(self, name: str) -> list[StagedOperation]:
        """Close transaction ``name`` and return what it staged, in order.

        Raises:
            BrokerError: ``UNKNOWN_TRANSACTION``.
        """
        operations = self._staged(name)
        del self._open[name]
        return operations

    def clear(self) -> None:
        """Drop every open transaction (the session is closing)."""
        self._open.clear()

    def _staged(self, name: str) -> list[StagedOperation]:
        operations = self._open.get(name)
        if operations is None:
            raise BrokerError(ErrorCode.UNKNOWN_TRANSACTION, _named(name))
        return operations


def _named(name: str) -> str:
    return f"transaction {name[:_DETAIL_CHARS]!r}"
