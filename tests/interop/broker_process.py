"""``buzon serve`` as a real subprocess on a free port, for interop and CLI tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

LISTENING = re.compile(r"buzon listening: stomp://([^:]+):(\d+)\s.*?http://[^:]+:(\d+)")
AMQP_LISTENING = re.compile(r"\samqp://[^:]+:(\d+)")


@dataclass
class BrokerProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    http_port: int
    banner: list[str]
    amqp_port: int = 0

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://{self.host}:{self.http_port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@contextlib.contextmanager
def broker_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[BrokerProcess]:
    """Start ``python -m buzon serve`` on free ports with ARGS; wait until it listens.

    Unless ARGS or ``env`` name a data directory, the broker gets a fresh temporary one.
    """
    # an empty value in ``env`` removes that variable (to test the unset case)
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v != ""}
    made_dir = None
    if "--data-dir" not in args and "BUZON_DATA_DIR" not in full_env:
        made_dir = tempfile.mkdtemp(prefix="buzon-test-")
        args = ("--data-dir", made_dir, *args)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "buzon", "serve"),
            *("--stomp-port", "0", "--http-port", "0", "--amqp-port", "0", *args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=cwd,
    )
    drain: threading.Thread | None = None
    try:
        banner: list[str] = []
        deadline = time.monotonic() + 20
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"buzon serve exited early: {''.join(banner)}")
            banner.append(line)
            found = LISTENING.search(line)
            if found:
                # Keep reading its output, so a chatty broker never blocks on a full pipe.
                drain = threading.Thread(target=_keep_last, args=(process.stdout, banner))
                drain.start()
                host, stomp_port, http_port = found.groups()
                amqp = AMQP_LISTENING.search(line)
                amqp_port = int(amqp.group(1)) if amqp else 0
                yield BrokerProcess(
                    process, host, int(stomp_port), int(http_port), banner, amqp_port
                )
                return
        raise RuntimeError(f"buzon serve did not start: {''.join(banner)}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if drain is not None:
            drain.join(10)
        if process.stdout is not None:
            process.stdout.close()
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)


def _keep_last(stream: TextIO, lines: list[str], keep: int = 200) -> None:
    """Read ``stream`` to its end, keeping its last ``keep`` lines in ``lines``."""
    for line in stream:
        lines.append(line)
        del lines[:-keep]
