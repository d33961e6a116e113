"""Server settings: one table of options, read from flags > BUZON_* environment > buzon.toml.

Each option is declared once in ``OPTIONS``; the command line, the environment reader,
the TOML reader and the README reference all come from that table. Invalid values are
reported as one readable line (``ConfigError``), never a traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buzon.broker import SlowConsumerPolicy
from buzon.broker.config import (
    DEFAULT_BACKLOG_WINDOW,
    DEFAULT_BACKLOG_WINDOW_BYTES,
    DEFAULT_DEDUP_MAX_KEYS,
    MAX_BACKLOG_WINDOW,
    MAX_BACKLOG_WINDOW_BYTES,
    MAX_DELAY_MS,
)
from buzon.errors import BuzonError, ErrorCode


class ConfigError(BuzonError):
    """A setting has an invalid value; the message names the setting and the source."""

    default_code = ErrorCode.BAD_HEADER_VALUE

    def __str__(self) -> str:
        return self.detail


class ListenError(ConfigError):
    """A listener cannot bind its address (in use, not permitted, unknown host).

    Args:
        listener: which one, as people call it ("STOMP", "HTTP", "STOMP TLS", "HTTPS").
        host: the address it was told to listen on.
        port: the port it was told to use.
        cause: what the operating system said.
    """

    def __init__(self, listener: str, host: str, port: int, cause: OSError) -> None:
        shown = f"[{host}]" if ":" in host else host
        # asyncio and socket wrap the system's words in their own; keep the system's
        if isinstance(cause, socket.gaierror) or not cause.errno:
            reason = cause.strerror or str(cause)
        else:
            reason = os.strerror(cause.errno)
        reason = reason[:1].lower() + reason[1:]
        flag = "--" + listener.lower().replace(" ", "-") + "-port"
        if cause.errno == errno.EADDRINUSE:
            reason += f" (another program holds it: stop it, or choose another port with {flag})"
        elif cause.errno == errno.EACCES:
            reason += f" (ports below 1024 need privileges: choose {flag})"
        elif isinstance(cause, socket.gaierror) or cause.errno == errno.EADDRNOTAVAIL:
            reason += " (check --host)"
        super().__init__(detail=f"cannot listen on {shown}:{port} for {listener}: {reason}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``buzon serve`` can be told. Defaults are safe for a laptop."""

    host: str = "127.0.0.1"
    stomp_port: int = 61613
    http_port: int = 8180
    tls_cert: Path | None = None
    tls_key: Path | None = None
    stomp_tls_port: int = 61614
    https_port: int = 8543
    amqp_port: int = 5672
    amqps_port: int = 5671
    plaintext: bool = True
    data_dir: Path = Path("buzon-data")
    storage: str = "sqlite"
    database_url: str | None = None
    node_name: str = ""  # empty: the host name and the STOMP port
    node_timeout: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    admin_user: str = "admin"
    admin_password: str | None = None
    registration: bool = True
    metrics_auth: bool = True
    auto_create: bool = True
    token_ttl: float = 24 * 3600.0
    max_connections: int = 10_000
    handshake_timeout: float = 10.0
    heartbeat_ms: int = 10_000
    max_outbound_bytes: int = 1024 * 1024
    http_max_body: int = 16 * 1024 * 1024
    ws_origins: tuple[str, ...] = ()
    max_queued_bytes: int = 512 * 1024 * 1024
    backlog_window: int = DEFAULT_BACKLOG_WINDOW
    backlog_window_bytes: int = DEFAULT_BACKLOG_WINDOW_BYTES
    max_delay_ms: int = MAX_DELAY_MS
    dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS
    min_free_disk: str = "auto"
    default_prefetch: int = 100
    channel_max_pending: int = 10_000
    slow_consumer_policy: str = SlowConsumerPolicy.DISCONNECT.value


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its field in ``Settings``, how to parse it and what it means.

    A secret (``secret=True``) has no flag: a flag's value shows in the process list, so
    secrets come from the environment or the file only. A switch (``switch=True``) is on
    by default; its flag turns it off (``--no-<name>``),
    and the environment and file give it as true/false. Its ``help`` says what the flag
    does.
    """

    field: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    switch: bool = False

    @property
    def key(self) -> str:
        """The name in buzon.toml."""
        return self.field.replace("_", "-")

    @property
    def flag(self) -> str:
        return ("--no-" if self.switch else "--") + self.key

    @property
    def env(self) -> str:
        return "BUZON_" + self.field.upper()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be 0..65535 (0 picks a free port)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _bounded_int(most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= most:
            raise ValueError(f"must be 1..{most}")
        return value

    return parse


def _floor_parts(value: str) -> tuple[float, bool]:
    """A floor setting other than ``auto`` as (amount, whether it is a percentage)."""
    if value.endswith("%"):
        return float(value[:-1]), True
    return int(value), False


def _disk_floor(text: str) -> str:
    """``auto``, a number of bytes, or a percentage of the volume (``5%``)."""
    value = text.strip().lower()
    if value == "auto":
        return value
    try:
        amount, share = _floor_parts(value)
    except ValueError:
        raise ValueError("must be auto, a number of bytes or a percentage like 5%") from None
    if share and not 0 <= amount < 100:
        raise ValueError("a percentage must be 0 or more and under 100")
    if amount < 0:
        raise ValueError("must be 0 or more")
    return value


AUTO_FLOOR_BYTES = 1024 * 1024 * 1024
AUTO_FLOOR_SHARE = 0.05


def disk_floor(setting: str, total: int) -> int:
    """Free bytes under which persistent publishes are refused, for a volume of ``total``
    bytes. ``auto``: the smaller of 1 GiB and 5% of the volume (so a small volume is not
    full from the start, and a large one keeps room for SQLite to finish a checkpoint)."""
    if setting == "auto":
        return min(AUTO_FLOOR_BYTES, int(total * AUTO_FLOOR_SHARE))
    amount, share = _floor_parts(setting)
    return int(total * amount / 100) if share else int(amount)


def _log_level(text: str) -> str:
    value = text.lower()
    if value not in {"debug", "info", "warning", "error"}:
        raise ValueError("must be one of debug, info, warning, error")
    return value


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in {"text", "json"}:
        raise ValueError("must be text or json")
    return value


def _policy(text: str) -> str:
    return SlowConsumerPolicy(text).value


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _storage(text: str) -> str:
    value = text.strip().lower()
    if value not in {"sqlite", "memory", "postgresql"}:
        raise ValueError("must be sqlite, memory or postgresql")
    return value


def _database_url(text: str) -> str:
    scheme, sep, rest = text.strip().partition("://")
    if scheme not in {"postgresql", "postgres"} or not sep or not rest:
        raise ValueError("must look like postgresql://USER@HOST:PORT/DATABASE")
    return text.strip()


def _node_timeout(text: str) -> float:
    value = float(text)
    if not 2.0 <= value <= 300.0:
        raise ValueError("must be 2 to 300 seconds")
    return value


def _path(text: str) -> Path:
    if not text:
        raise ValueError("must not be empty")
    return Path(text).expanduser()


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _origins(text: str) -> tuple[str, ...]:
    """Comma-separated web origins (``https://host[:port]``), lower-cased as browsers send them."""
    origins = tuple(item.strip().lower().rstrip("/") for item in text.split(",") if item.strip())
    for origin in origins:
        scheme, sep, authority = origin.partition("://")
        if scheme not in {"http", "https"} or not sep or not authority or "*" in authority:
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com[:port]")
        if any(char in authority for char in "/?#@"):
            raise ValueError(f"{origin!r}: an origin has no path, query or user name")
    return origins


OPTIONS: tuple[Option, ...] = (
    Option("host", _text, "address to listen on (loopback unless you open it up)"),
    Option("stomp_port", _port, "STOMP over TCP port (0 picks a free port)"),
    Option("http_port", _port, "HTTP API port (0 picks a free port)"),
    Option("tls_cert", _path, "TLS certificate chain, PEM; with --tls-key turns on TLS listeners"),
    Option("tls_key", _path, "TLS private key, PEM, unencrypted"),
    Option("stomp_tls_port", _port, "STOMP over TLS port, beside the plain one (with TLS on)"),
    Option("https_port", _port, "HTTPS port for the same API, beside HTTP (with TLS on)"),
    Option("amqp_port", _port, "AMQP 0-9-1 port (0 picks a free port)"),
    Option("amqps_port", _port, "AMQP 0-9-1 over TLS port, beside the plain one (with TLS on)"),
    Option(
        "plaintext",
        _boolean,
        "serve only the TLS listeners: no plain STOMP or HTTP (needs --tls-cert and --tls-key)",
        switch=True,
    ),
    Option("data_dir", _path, "where the SQLite database lives (created 0700)"),
    Option(
        "storage",
        _storage,
        "sqlite (durable, the default), memory (nothing survives a restart) or postgresql"
        " (several nodes on one database: a cluster; needs --database-url)",
    ),
    Option(
        "database_url",
        _database_url,
        "with --storage postgresql: postgresql://USER@HOST:PORT/DATABASE (the password"
        " from PGPASSWORD or ~/.pgpass; sslmode=... for TLS)",
    ),
    Option(
        "node_name",
        _text,
        "this node's name in a cluster (default: the host name and the STOMP port)",
    ),
    Option(
        "node_timeout",
        _node_timeout,
        "seconds a cluster node may go silent before the others hand its unacked messages"
        " to their consumers",
    ),
    Option("log_level", _log_level, "debug, info, warning or error"),
    Option("log_format", _log_format, "text (one readable line per event) or json (one object)"),
    Option("admin_user", _text, "admin login name"),
    Option(
        "admin_password",
        _text,
        "admin password; when unset a strong one is generated and printed once",
        secret=True,
    ),
    Option(
        "registration",
        _boolean,
        "close registration: only admins create accounts",
        switch=True,
    ),
    Option(
        "metrics_auth",
        _boolean,
        "serve /metrics without credentials (for a scraper on a trusted network)",
        switch=True,
    ),
    Option(
        "auto_create",
        _boolean,
        "SEND or SUBSCRIBE to a missing queue or channel is an error instead of creating it",
        switch=True,
    ),
    Option("token_ttl", _positive_float, "seconds an HTTP login token stays valid"),
    Option("max_connections", _positive_int, "open connections at most; more get ERROR"),
    Option("handshake_timeout", _positive_float, "seconds a client has to finish CONNECT"),
    Option("heartbeat_ms", _non_negative_int, "heart-beat interval offered to clients, ms (0=off)"),
    Option(
        "max_outbound_bytes",
        _positive_int,
        "per-connection outbound buffer; past it the connection gets no more deliveries",
    ),
    Option(
        "max_queued_bytes",
        _positive_int,
        "message bytes all queues may hold; above it publishers are paused until they drain",
    ),
    Option(
        "backlog_window",
        _bounded_int(MAX_BACKLOG_WINDOW),
        "waiting messages a durable queue keeps in memory; the rest stay on disk",
    ),
    Option(
        "backlog_window_bytes",
        _bounded_int(MAX_BACKLOG_WINDOW_BYTES),
        "body bytes of that window, at most",
    ),
    Option(
        "max_delay_ms",
        _positive_int,
        "longest delay a message may be given (delay, deliver-at, requeue-delay), ms",
    ),
    Option(
        "dedup_max_keys",
        _positive_int,
        "publishers' idempotency keys held in memory (each costs 300 to 750 bytes); past it a queue"
        " forgets its oldest keys before their window ends",
    ),
    Option(
        "min_free_disk",
        _disk_floor,
        "free disk under which persistent publishes get ERROR storage full: bytes, a"
        " percentage (5%) or auto",
    ),
    Option("http_max_body", _positive_int, "largest HTTP request body, in bytes"),
    Option(
        "ws_origins",
        _origins,
        "web pages allowed to open STOMP over WebSocket at /ws besides the broker's own,"
        " comma-separated (https://app.example.com)",
    ),
    Option("default_prefetch", _positive_int, "unacked messages per queue subscription by default"),
    Option(
        "channel_max_pending",
        _positive_int,
        "messages held for a channel subscriber that cannot keep up",
    ),
    Option(
        "slow_consumer_policy",
        _policy,
        "what happens past that bound: disconnect or drop-oldest",
    ),
)


def load_settings(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the three sources, highest first: flags, ``BUZON_*`` variables, TOML file.

    Args:
        flags: field name → raw text from the command line (None when not given).
        environ: the environment (defaults to ``os.environ``).
        config_file: a TOML file; when None, ``./buzon.toml`` is read if it exists.

    Raises:
        ConfigError: a value does not parse, or the file is not valid TOML.
    """
    env = os.environ if environ is None else environ
    file_values = _read_toml(config_file)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = flags.get(option.field), option.flag
        if raw is None and option.env in env:
            raw, source = env[option.env], option.env
        if raw is None and option.key in file_values:
            raw, source = _file_text(file_values[option.key]), f"{option.key} in buzon.toml"
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if option.secret else repr(raw)
            raise ConfigError(detail=f"invalid {source} {shown}: {_reason(exc)}") from None
    settings = dataclasses.replace(Settings(), **values)
    if settings.storage == "postgresql" and settings.database_url is None:
        raise ConfigError(
            detail="--storage postgresql needs --database-url postgresql://USER@HOST:PORT/DB"
        )
    return settings


def _file_text(value: Any) -> str:
    """TOML values as the text a flag or variable would carry (true/false for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # a list of origins
        return ",".join(str(item) for item in value)
    return str(value)


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return "not a number" if text.startswith(("invalid literal", "could not convert")) else text


def _read_toml(path: Path | None) -> dict[str, Any]:
    explicit = path is not None
    target = path if path is not None else Path("buzon.toml")
    if not target.exists():
        if explicit:
            raise ConfigError(detail=f"config file {target} does not exist")
        return {}
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(detail=f"config file {target} is not valid TOML: {exc}") from None
    known = {option.key for option in OPTIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(detail=f"config file {target}: unknown setting {unknown[0]!r}")
    return data
