"""A private RabbitMQ node with the STOMP plugin, for the comparison runner.

Debian's ``rabbitmq-server`` package runs one system node as the ``rabbitmq`` user, with
state that outlives it. A comparison needs the opposite: a fresh node for every run, on free
loopback ports, that leaves nothing behind. So the node runs from the package's own start
script (``/usr/lib/rabbitmq/bin/rabbitmq-server``, as the calling user), and every path it
writes (database, logs, Erlang cookie, plugin list, configuration) lives in a temporary
directory that is deleted when the node stops. Its ``beam.smp`` process, the one whose CPU
and memory are measured, is found by that directory (its ``-home``) in the command line.

Run as a script, it starts one such node, prints its AMQP URL (for the AMQP acceptance
tests: ``BUZON_TEST_AMQP_URL``) and its ports, and keeps it until interrupted:

    python benchmarks/rabbitmq.py [--base-dir DIR]

The first Erlang node on a machine spawns ``epmd``, a daemon that outlives it; it is stopped
with the node only when this node started it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
INSTALL = "apt-get install -y rabbitmq-server"
LOGIN = ("guest", "guest")  # RabbitMQ's default user, allowed from loopback only
# The whole configuration: loopback listeners on free ports, everything else as packaged.
CONFIG = "listeners.tcp.default = 127.0.0.1:{amqp}\nstomp.listeners.tcp.1 = 127.0.0.1:{stomp}\n"
_nodes = itertools.count(1)


class StartFailed(RuntimeError):
    """The node did not come up; the message says what it printed."""


@dataclass(frozen=True)
class Node:
    """A running node: where its STOMP and AMQP listeners are and which process to
    measure."""

    stomp_port: int
    beam_pid: int
    version: str
    erlang: str
    amqp_port: int = 0


def installed() -> bool:
    return SERVER.exists()


def package_version() -> str:
    """The Debian package's version, e.g. ``3.10.8-1.1+deb12u1``."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes(name: str) -> dict[int, bytes]:
    """pid -> NUL-separated command line of every process whose executable is ``name``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if cmdline and Path(cmdline.split(b"\0", 1)[0].decode(errors="replace")).name == name:
            found[int(entry.name)] = cmdline
    return found


def stomp_ready(port: int, who: tuple[str, str] = LOGIN) -> bool:
    """True once the STOMP listener answers a CONNECT (as ``who``) with CONNECTED."""
    login, passcode = who
    connect = f"CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\n\n\x00"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(connect.encode())
            return sock.recv(4096).startswith(b"CONNECTED")
    except OSError:
        return False


def write_config(home: Path, amqp_port: int, stomp_port: int) -> dict[str, str]:
    """The node's files and environment: everything in ``home``, listening on loopback."""
    (home / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
    (home / "rabbitmq.conf").write_text(CONFIG.format(amqp=amqp_port, stomp=stomp_port))
    (home / "rabbitmq-env.conf").touch()  # instead of /etc/rabbitmq/rabbitmq-env.conf
    return {
        "HOME": str(home),  # the Erlang cookie goes here
        "RABBITMQ_NODENAME": f"buzon-bench-{os.getpid()}-{next(_nodes)}@localhost",
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),  # absent: none
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_ADDRESS": "127.0.0.1",  # if this node starts epmd, loopback only
    }


def find_beam(home: Path) -> int:
    marker = f"\0-home\0{home}\0".encode()
    pids = [pid for pid, cmdline in processes("beam.smp").items() if marker in cmdline]
    if len(pids) != 1:
        raise StartFailed(f"expected one beam.smp with -home {home}, found {pids}")
    return pids[0]


def banner_versions(stdout: str) -> tuple[str, str]:
    """RabbitMQ's and Erlang's versions as the node printed them when it started."""
    rabbit = re.search(r"RabbitMQ (\d\S*)", stdout)
    erlang = re.search(r"Erlang:\s+(\S+)", stdout)
    return (rabbit.group(1) if rabbit else "unknown", erlang.group(1) if erlang else "unknown")


def wait_gone(pid: int, timeout: float) -> bool:
    """Reap ``pid`` if it is our child; True once it has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child: watch /proc instead
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return True
            if state == "Z":
                return True
        time.sleep(0.05)
    return False


def stop_pid(pid: int, timeout: float = 30) -> None:
    """SIGTERM, wait, SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)


@dataclass(frozen=True)
class Home:
    """A node's directory, environment and ports: all a restart of it needs."""

    path: Path
    env: dict[str, str]
    stomp_port: int
    amqp_port: int


def make_home(base_dir: str) -> Home:
    path = Path(tempfile.mkdtemp(prefix="rabbitmq-bench-", dir=base_dir))
    stomp_port, amqp_port = free_port(), free_port()
    return Home(path, write_config(path, amqp_port, stomp_port), stomp_port, amqp_port)


def launch(home: Home, timeout: float = 90) -> tuple[subprocess.Popen[bytes], Node]:
    """Run the start script on ``home``; return once the node answers a STOMP CONNECT.
    A node that does not come up within ``timeout`` seconds is stopped."""
    stdout_path = home.path / "stdout.log"
    started_at = stdout_path.stat().st_size if stdout_path.exists() else 0
    with open(stdout_path, "a") as stdout:  # a restart appends to the first start's log
        wrapper = subprocess.Popen(
            [str(SERVER)],
            env={**os.environ, **home.env},
            cwd=home.path,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal goes to the runner only
        )
    try:
        deadline = time.monotonic() + timeout
        while not stomp_ready(home.stomp_port):
            if wrapper.poll() is not None or time.monotonic() > deadline:
                tail = stdout_path.read_text()[started_at:][-2000:]
                raise StartFailed(
                    f"RabbitMQ did not accept a STOMP CONNECT on port {home.stomp_port} within"
                    f" {timeout:.0f} s (start script exit code {wrapper.poll()}):\n{tail}"
                )
            time.sleep(0.05)
        version, erlang = banner_versions(stdout_path.read_text()[started_at:])
        node = Node(home.stomp_port, find_beam(home.path), version, erlang, home.amqp_port)
        return wrapper, node
    except BaseException:
        halt(wrapper, None)
        raise


def halt(wrapper: subprocess.Popen[bytes], beam_pid: int | None) -> None:
    """Stop a node's ``beam.smp`` (SIGTERM, then SIGKILL), then its start script; a start
    that failed half-way, with no beam found, loses its whole process group."""
    if beam_pid is not None:
        stop_pid(beam_pid)
    try:
        wrapper.wait(10 if beam_pid else 0)
    except subprocess.TimeoutExpired:
        os.killpg(wrapper.pid, signal.SIGKILL)
        wrapper.wait()


@contextlib.contextmanager
def node_home(base_dir: str) -> Iterator[Home]:
    """A fresh home under ``base_dir``; deleted after, with any ``epmd`` started meanwhile."""
    home = make_home(base_dir)
    epmd_before = set(processes("epmd"))
    try:
        yield home
    finally:
        for epmd in set(processes("epmd")) - epmd_before:
            stop_pid(epmd, 5)
        shutil.rmtree(home.path, ignore_errors=True)


@contextlib.contextmanager
def private_node(base_dir: str, timeout: float = 90) -> Iterator[Node]:
    """Start a node with its state under ``base_dir``; stop it and delete that state after."""
    with node_home(base_dir) as home:
        wrapper, node = launch(home, timeout)
        try:
            yield node
        finally:
            halt(wrapper, node.beam_pid)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a private RabbitMQ node until Ctrl-C.")
    parser.add_argument("--base-dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop it as Ctrl-C does
    with private_node(args.base_dir) as node:
        login, passcode = LOGIN
        print(f"amqp://{login}:{passcode}@127.0.0.1:{node.amqp_port}/", flush=True)
        print(
            f"RabbitMQ {node.version}: AMQP port {node.amqp_port}, STOMP port"
            f" {node.stomp_port}, beam.smp pid {node.beam_pid}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
