"""Running the real ``buzon`` command as a script would: a subprocess, no terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from buzon.cli.session import Credentials, SavedLogin
from buzon.client import ManagementClient

ADMIN_PASSWORD = "cli-admin-password"


@dataclass(frozen=True)
class Cli:
    """``buzon`` for one person: their own config directory, pointed at one broker."""

    url: str
    config_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BUZON_URL", "XDG_CONFIG_HOME")}
        return {**env, "BUZON_CONFIG_DIR": str(self.config_dir), **extra}

    def run(
        self, *args: str, stdin: str = "", with_url: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``buzon ARGS [--url URL]`` with ``stdin`` piped in."""
        command = [sys.executable, "-m", "buzon", *args, *(["--url", self.url] if with_url else [])]
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            env=env if env is not None else self.env(),
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        """Run a command that must succeed; return its stdout."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def fails(self, *args: str, stdin: str = "") -> str:
        """Run a command that must fail with one readable line; return that line."""
        return one_error_line(self.run(*args, stdin=stdin))

    def login(self, username: str, password: str) -> None:
        """Log in through the SDK and store the token as ``buzon user login`` does."""
        with ManagementClient(self.url) as client:
            token = client.login(username, password)
        login = SavedLogin(username, token.token, token.expires_at)
        Credentials(self.config_dir).save(self.url, login)


def free_port() -> int:
    """A port nothing listens on: bound to 0 by the OS, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``buzon: ...`` line a failed command printed; nothing on stdout."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("buzon: ")
    return lines[0]
