"""Broker addresses for the STOMP client: ``stomp://user:pass@host:port``.

``stomp+ssl://`` asks for TLS (certificates verified by default). User name and password in
the URL are percent-decoded, so any character can be given. Several brokers (the nodes of a
cluster) are listed comma-separated after the credentials, ``stomp://user@h1:61613,h2``: the
client tries them in that order and fails over to the next one (see :mod:`buzon.client.aio`);
a host without a port gets the scheme's default, an IPv6 address goes in brackets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

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


@dataclass(frozen=True, slots=True)
class StompUrl:
    """A parsed broker URL: one or more brokers, tried in the URL's order, with one scheme
    and one set of credentials.

    Attributes:
        addresses: the brokers, at least one, in the URL's order.
    """

    addresses: tuple[StompAddress, ...]

    @property
    def tls(self) -> bool:
        """Whether the connections use TLS (``stomp+ssl``)."""
        return self.addresses[0].tls

    @property
    def login(self) -> str | None:
        """The user name from the URL, if any."""
        return self.addresses[0].login

    @property
    def passcode(self) -> str | None:
        """The password from the URL, if any."""
        return self.addresses[0].passcode

    @property
    def display(self) -> str:
        """The URL without its credentials (``stomp://h1:61613,h2:61613``), for messages."""
        scheme = "stomp+ssl" if self.tls else "stomp"
        return f"{scheme}://{','.join(address.host_port for address in self.addresses)}"


def parse_stomp_url(url: str) -> StompUrl:
    """Parse ``stomp://[user[:pass]@]host[:port][,host[:port]...]`` or ``stomp+ssl://...``.

    Raises:
        RequestError: BAD_REQUEST for another scheme, no host, an empty entry in the list,
            a bad port or an IPv6 address that is not valid or not in brackets. The message
            names the faulty entry and never the password.
    """
    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"{_without_password(url)!r}: use stomp:// or stomp+ssl://"
        )
    netloc = re.split("[/?#]", rest, maxsplit=1)[0]
    credentials, _, hosts = netloc.rpartition("@")
    login, colon, passcode = credentials.partition(":")
    tls = scheme == "stomp+ssl"
    if not hosts:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{scheme}://{hosts}: no host")
    addresses = tuple(
        StompAddress(
            *_host_and_port(entry, scheme, hosts),
            tls=tls,
            login=unquote(login) if credentials else None,
            passcode=unquote(passcode) if colon else None,
        )
        for entry in hosts.split(",")
    )
    return StompUrl(addresses)


def _host_and_port(entry: str, scheme: str, hosts: str) -> tuple[str, int]:
    """One ``host[:port]`` (``[v6][:port]``) of the list ``hosts``."""

    def bad(reason: str) -> RequestError:
        return RequestError(ErrorCode.BAD_REQUEST, f"{scheme}://{hosts}: {reason}")

    if not entry:
        raise bad("an empty entry in the list of brokers (a stray comma?)")
    if entry.startswith("["):
        host, bracket, port_text = entry[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise bad(f"{entry!r} is not [IPv6 address]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address") from None
        port_text = port_text[1:]
    else:
        host, _, port_text = entry.partition(":")
        if ":" in port_text:
            raise bad(f"{entry!r}: put an IPv6 address in brackets, [{entry}]")
        if not host or any(c.isspace() or c in "[]@/" for c in host):
            raise bad(f"{entry!r} has no valid host")
    if not port_text:
        return host.lower(), DEFAULT_PORTS[scheme]
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise bad(f"{entry!r} has an invalid port (1 to 65535)")
    return host.lower(), int(port_text)


def _without_password(url: str) -> str:
    """``url`` with the password of its credentials, if any, left out."""
    before, at, hosts = url.rpartition("@")
    if not at:
        return url
    scheme, sep, login = before.partition("://")
    return f"{scheme}{sep}{login.partition(':')[0]}@{hosts}" if sep else url
