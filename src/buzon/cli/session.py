"""Logins kept between commands, secrets read from people or scripts, and the client.

``buzon user login`` stores a bearer token in ``credentials.json``, keyed by the broker's
root URL, so that later commands against that URL act as that user. The file holds live
secrets: it is created 0600 inside a 0700 directory and replaced atomically (a temporary
file renamed over it), so neither other local users nor an interrupted write can expose
or corrupt it. Passwords and access keys never come from arguments (other local users see
those in the process list): they are read from a terminal, or one line from stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buzon.client import ApiError, ManagementClient, broker_url
from buzon.errors import BuzonError, ErrorCode

DEFAULT_URL = "http://127.0.0.1:8180"
CREDENTIALS_FILE = "credentials.json"


class CliError(BuzonError):
    """A command cannot go on: bad input, not logged in, an unusable credentials file.

    Its text is the detail alone, a complete sentence for the person at the terminal.
    """

    default_code = ErrorCode.BAD_REQUEST

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class SavedLogin:
    """One stored login: who, the bearer token, and until when it is valid."""

    username: str
    token: str = field(repr=False)
    expires_at: datetime


Handler = Callable[[argparse.Namespace], int]


def add_action(
    actions: Any, name: str, handler: Handler, summary: str, *, prints_data: bool
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with ``--url``, and ``--json`` when it prints data.

    Abbreviated options are refused, so ``--password SECRET`` is an error about
    ``--password`` rather than a silent ``--password-stdin`` followed by a stray word.
    """
    parser: argparse.ArgumentParser = actions.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--url",
        default=None,
        help=f"the broker (default: $BUZON_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--ca-file",
        default=None,
        metavar="FILE",
        help="PEM certificate of the CA that signed the broker's, for https:// and stomp+ssl://"
        " (default: $BUZON_CA_FILE, else the system's trust store)",
    )
    if prints_data:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=handler)
    return parser


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero."""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def url_of(args: argparse.Namespace) -> str:
    """The broker root URL a command talks to: ``--url``, ``$BUZON_URL`` or the default."""
    given: str | None = args.url
    return broker_url(given or os.environ.get("BUZON_URL") or DEFAULT_URL)


def ca_file_of(args: argparse.Namespace, url: str) -> Path | None:
    """``--ca-file`` or ``$BUZON_CA_FILE`` when ``url`` uses TLS; None for a plain URL."""
    given: str | None = args.ca_file or os.environ.get("BUZON_CA_FILE")
    if not given or not url.startswith(("https://", "stomp+ssl://")):
        return None
    return Path(given)


def management_client(args: argparse.Namespace, token: str | None = None) -> ManagementClient:
    """A client for the command's broker URL, trusting ``--ca-file`` when given."""
    url = url_of(args)
    return ManagementClient(url, token=token, ca_file=ca_file_of(args, url))


def config_dir() -> Path:
    """``$BUZON_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/buzon``, else ``~/.config/buzon``."""
    explicit = os.environ.get("BUZON_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "buzon"


class Credentials:
    """The logins file, read and written whole (it holds a handful of entries)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = config_dir() if directory is None else directory
        self.path = self.directory / CREDENTIALS_FILE

    def get(self, url: str) -> SavedLogin | None:
        """The login stored for ``url``; None when there is none or it is unreadable."""
        entry: Any = self._load().get(url)
        try:
            login = SavedLogin(
                username=str(entry["username"]),
                token=str(entry["token"]),
                expires_at=datetime.fromisoformat(str(entry["expires_at"])),
            )
        except (TypeError, KeyError, ValueError):
            return None
        return login if login.expires_at.tzinfo is not None else None

    def save(self, url: str, login: SavedLogin) -> None:
        """Store ``login`` for ``url``, replacing any earlier one."""
        entries = self._load()
        entries[url] = {
            "username": login.username,
            "token": login.token,
            "expires_at": login.expires_at.isoformat(),
        }
        self._write(entries)

    def forget(self, url: str) -> bool:
        """Remove the login for ``url``; return whether there was one."""
        entries = self._load()
        if entries.pop(url, None) is None:
            return False
        self._write(entries)
        return True

    def _load(self) -> dict[str, Any]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CliError(detail=f"cannot read {self.path}: {exc.strerror}") from None
        except ValueError:
            entries = None
        if not isinstance(entries, dict):
            raise CliError(detail=f"{self.path} is not a credentials file; delete it, log in again")
        return entries

    def _write(self, entries: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.directory.stat().st_mode & 0o077:
                self.directory.chmod(0o700)
            _replace(self.path, json.dumps(entries, indent=2))
        except OSError as exc:
            raise CliError(detail=f"cannot write {self.path}: {exc.strerror}") from None


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a new 0600 file beside ``path``, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def login_hint(url: str) -> str:
    """The command that logs in to ``url``, with ``--url`` unless it is the default."""
    default = broker_url(os.environ.get("BUZON_URL") or DEFAULT_URL)
    return "buzon user login" if url == default else f"buzon user login --url {url}"


def saved_login(url: str, credentials: Credentials) -> SavedLogin:
    """The valid stored login for ``url``.

    Raises:
        CliError: NOT_AUTHENTICATED, with the command to run, when there is none or it
            has expired.
    """
    login = credentials.get(url)
    if login is None:
        reason = f"not logged in to {url}"
    elif _expired(login):
        reason = f"your login to {url} has expired"
    else:
        return login
    raise CliError(ErrorCode.NOT_AUTHENTICATED, f"{reason}; run: {login_hint(url)}")


def _expired(login: SavedLogin) -> bool:
    return login.expires_at <= datetime.now(UTC)


@contextlib.contextmanager
def logged_in(args: argparse.Namespace, *, optional: bool = False) -> Iterator[ManagementClient]:
    """A client acting as the stored login for the command's URL.

    When the broker no longer accepts the token (revoked, expired, account disabled), the
    login is forgotten and the error says to log in again. With ``optional``, a missing or
    expired login gives an anonymous client instead of an error.
    """
    url = url_of(args)
    credentials = Credentials()
    if optional:
        login = credentials.get(url)
        login = login if login is not None and not _expired(login) else None
    else:
        login = saved_login(url, credentials)
    with management_client(args, None if login is None else login.token) as client:
        try:
            yield client
        except ApiError as exc:
            if login is None or exc.code is not ErrorCode.NOT_AUTHENTICATED:
                raise
            credentials.forget(url)
            raise CliError(
                ErrorCode.NOT_AUTHENTICATED,
                f"{url} no longer accepts your login ({exc.detail}); run: {login_hint(url)}",
            ) from None


def read_secret(label: str, *, stdin_flag: str, from_stdin: bool, confirm: bool = False) -> str:
    """A password or key: one line of stdin, or typed at a terminal without echo.

    Raises:
        CliError: stdin is empty, there is no terminal to ask on, the two typed values
            differ, or the value is not UTF-8 text (what logins and frames carry).
    """
    try:
        value = _read_secret(label, stdin_flag, from_stdin=from_stdin, confirm=confirm)
        value.encode()  # bytes that are not UTF-8 arrive as lone surrogates, or raise above
    except UnicodeError:
        raise CliError(detail=f"the {label} is not UTF-8 text") from None
    return value


def _read_secret(label: str, stdin_flag: str, *, from_stdin: bool, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError(detail=f"no {label} on stdin (give it as the first line)")
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise CliError(detail=f"no terminal to ask for the {label}; pipe it in with {stdin_flag}")
    try:
        value = getpass.getpass(f"{label.capitalize()}: ")
        if confirm and getpass.getpass(f"{label.capitalize()} again: ") != value:
            raise CliError(detail=f"the two {label}s differ")
    except EOFError:
        raise CliError(detail=f"no {label} given") from None
    return value


def read_username(given: str | None) -> str:
    """``--username``, or asked at a terminal.

    Raises:
        CliError: neither given nor a terminal to ask on.
    """
    if given:
        return given
    if not sys.stdin.isatty():
        raise CliError(detail="give --username (there is no terminal to ask on)")
    try:
        return input("Username: ").strip()
    except EOFError:
        raise CliError(detail="no username given") from None
