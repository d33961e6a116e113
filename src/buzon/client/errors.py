"""What the SDK raises, under :class:`buzon.errors.BuzonError`.

Two cases, kept apart because the caller's reaction differs::

    BuzonError
    ├── ApiError                the broker answered, and refused: look at ``code``
    │   └── LoginRefused        ... a STOMP login (CONNECT), naming the address that refused
    └── BuzonConnectionError    no answer at all: wrong URL, broker down, network, timeout

Neither module here imports a transport, so the HTTP client and the STOMP client can share
these classes.
"""

from __future__ import annotations

from buzon.errors import GENERIC_BY_STATUS, BuzonError, ErrorCode


class ApiError(BuzonError):
    """The broker refused a request; ``code`` says why, as the broker's own ErrorCode.

    Args:
        code: the broker's code (INTERNAL_ERROR for a code this client does not know).
        detail: the broker's explanation, if any.
        status: the HTTP status of the answer.
        code_name: the code exactly as the broker sent it (differs from ``code.name``
            only when a newer broker sends a code this client does not know).
        retry_after: seconds the broker asked to wait (TOO_MANY_ATTEMPTS, LIMIT_EXCEEDED).
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str = "",
        *,
        status: int,
        code_name: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, detail)
        self.status = status
        self.code_name = code.name if code_name is None else code_name
        self.retry_after = retry_after

    @classmethod
    def from_body(cls, status: int, body: object, retry_after: float | None = None) -> ApiError:
        """The error an answer with ``status`` and decoded JSON ``body`` stands for.

        A body of the form ``{"error": {"code", "message", "detail"}}`` gives its code
        (unknown codes become INTERNAL_ERROR, with the broker's text kept in the detail);
        anything else gets a code from the status alone.
        """
        error = body.get("error") if isinstance(body, dict) else None
        name = error.get("code") if isinstance(error, dict) else None
        if not isinstance(error, dict) or not isinstance(name, str):
            code = GENERIC_BY_STATUS.get(status, ErrorCode.INTERNAL_ERROR)
            return cls(code, f"HTTP {status} without a buzon error body", status=status)
        detail = str(error.get("detail") or "")
        known = ErrorCode.__members__.get(name)
        if known is None:
            message = str(error.get("message") or "")
            detail = "; ".join(part for part in (f"{name}: {message}", detail) if part)
            known = ErrorCode.INTERNAL_ERROR
        return cls(known, detail, status=status, code_name=name, retry_after=retry_after)


class BuzonConnectionError(BuzonError):
    """The broker could not be reached at ``url``: refused, unresolvable, reset or timed out.

    Its ``code`` is INTERNAL_ERROR: the registry has no code for "no answer", because the
    broker never sends one. Tell this case apart by its class, not by its code.

    Args:
        url: the broker URL that was tried.
        reason: what went wrong, e.g. "connection refused".
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(ErrorCode.INTERNAL_ERROR, reason)
        self.url = url

    def __str__(self) -> str:
        return f"cannot reach the broker at {self.url}: {self.detail}"


class LoginRefused(ApiError):
    """A STOMP listener answered CONNECT with an ERROR: wrong password, disabled account,
    too many attempts, too many connections, or a server that is not buzon saying no in
    its own words. ``code`` is the broker's (INTERNAL_ERROR when it sent none of ours).

    Args:
        address: ``host:port`` of the listener that refused.
        refused: the broker's ERROR.
    """

    def __init__(self, address: str, refused: ApiError) -> None:
        super().__init__(
            refused.code,
            refused.detail,
            status=refused.status,
            code_name=refused.code_name,
            retry_after=refused.retry_after,
        )
        self.address = address

    def __str__(self) -> str:
        if self.code is ErrorCode.INTERNAL_ERROR:  # not one of our codes: the server's words
            reason = self.detail or "no reason given"
        else:
            reason = f"{self.code.message}: {self.detail}" if self.detail else self.code.message
        return f"{self.address} refused the login: {' '.join(reason.split())}"
