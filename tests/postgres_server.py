"""A throwaway PostgreSQL server for tests and benchmarks: its own data directory, a free
port on 127.0.0.1, stopped by its process id.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` system user
(``runuser``). Databases are owned by an ordinary role (``buzon``, no superuser), as the
cluster docs ask of a deployment.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
OWNER = "buzon"
"""The ordinary role that owns the test databases."""


def postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None when not installed."""
    for candidate in BIN_DIRS:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One private PostgreSQL server.

    Args:
        bin_dir: where its programs are.
        root: a directory for its data and socket (removed by :meth:`cleanup`).
        fsync: False runs the server with ``fsync=off``: every commit still reaches the
            kernel before it is acknowledged, so a killed server (SIGKILL) recovers it, and
            only an operating-system crash (which no test makes) could lose it. The test
            suite runs so: commits, ``CREATE DATABASE`` and the shutdown checkpoint stop
            waiting on the disk. Benchmarks keep the default.
    """

    def __init__(self, bin_dir: Path, root: Path, *, fsync: bool = True) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.fsync = fsync
        self.data = root / "data"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._as_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """Create the data directory (trust authentication, loopback only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections (same port every time)."""
        with open(self.root / "server.log", "ab") as server_log:
            self._process = self._spawn(server_log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start: see {self.root / 'server.log'}")
            try:
                self.psql("postgres", "SELECT 1")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not accept connections in time")

    def _spawn(self, server_log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *self._as_user,
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
                "-c",
                f"fsync={'on' if self.fsync else 'off'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=server_log,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop the server (SIGINT: fast shutdown; SIGKILL: a crash) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # runuser stays the parent: signal the whole group so the server itself gets it
        os.killpg(process.pid, sig)
        process.wait(timeout)
        if sig == signal.SIGKILL:
            # the server's children outlive a killed postmaster for a moment: wait until the
            # whole group is gone (its postmaster.pid stays behind; the next start copes)
            deadline = time.monotonic() + timeout
            with contextlib.suppress(ProcessLookupError):
                while time.monotonic() < deadline:
                    os.killpg(process.pid, signal.SIGKILL)
                    time.sleep(0.05)

    def psql(self, database: str, sql: str) -> str:
        """Run SQL as the superuser; return its unaligned output."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout

    def new_database(self) -> str:
        """A fresh empty database owned by the ordinary role; returns its URL."""
        name = f"buzon_{os.getpid()}_{next(self._names)}"
        self.psql(
            "postgres",
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER}') THEN"
            f" CREATE ROLE {OWNER} LOGIN; END IF; END $$;",
        )
        self.psql("postgres", f"CREATE DATABASE {name} OWNER {OWNER}")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{OWNER}@127.0.0.1:{self.port}/{database}"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(*, fsync: bool = True) -> Iterator[PostgresServer]:
    """A started private server, stopped and removed at exit (``fsync``: see
    :class:`PostgresServer`).

    Raises:
        RuntimeError: PostgreSQL is not installed.
    """
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="buzon-pg-")), fsync=fsync)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.cleanup()
