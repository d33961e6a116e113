"""Broker addresses for the STOMP client: ``stomp://user:pass@host:port``.

``stomp+ssl://`` asks for TLS (certificates verified by default). User name and password in
the URL are percent-decoded, so any character can be given.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from buzon.errors import ErrorCode, RequestError

DEFAULT_PORTS = {"stomp": 61613, "stomp+ssl": 61614}


@dataclass(frozen=True, slots=True)
class StompAddress:
    """Where and how to connect.

    Attributes:
        host: host name or address.
        port: TCP port.
        tls: whether to wrap the connection in TLS.
        login: the user name from the URL, if any.
        passcode: the password from the URL, if any.
    """

    host: str
    port: int
    tls: bool
    login: str | None
    passcode: str | None

    @property
    def display(self) -> str:
        """The URL without its credentials, for messages and logs."""
        scheme = "stomp+ssl" if self.tls else "stomp"
        return f"{scheme}://{self.host_port}"

    @property
    def host_port(self) -> str:
        """``host:port`` (``[v6]:port``), for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_stomp_url(url: str) -> StompAddress:
    """Parse ``stomp://[user[:pass]@]host[:port]`` or ``stomp+ssl://...``.

    Raises:
        RequestError: BAD_REQUEST for another scheme, a missing host or a bad port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{url!r}: use stomp:// or stomp+ssl://")
    try:
        port = parts.port
    except ValueError:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{url!r}: invalid port") from None
    if not parts.hostname:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{url!r}: no host")
    return StompAddress(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "stomp+ssl",
        login=None if parts.username is None else unquote(parts.username),
        passcode=None if parts.password is None else unquote(parts.password),
    )
