"""What the comparison ran on: hardware, kernel, the data directories' file system, and the
versions of everything measured, read from the running system rather than written down."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import rabbitmq


def fs_type(path: str) -> str:
    """The type of the file system holding ``path`` (the longest mount point above it)."""
    best, kind = "", "unknown"
    real = os.path.realpath(path)
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount_point, fstype = line.split()[:3]
            inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fstype
    return kind


def disk_dir() -> str:
    """Where brokers keep their data: the temporary directory unless it is in memory (then
    the directory above the checkout)."""
    base = tempfile.gettempdir()
    if fs_type(base) in {"tmpfs", "ramfs"}:
        base = str(Path(__file__).resolve().parents[2])
    return base


def first_value(path: str, key: str) -> str:
    """The value of the first ``key: value`` or ``key=value`` line of a file."""
    with contextlib.suppress(OSError), open(path) as lines:
        for line in lines:
            if line.startswith(key):
                return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
    return "unknown"


def package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def facts(data_dir: str, node: rabbitmq.Node | None) -> list[tuple[str, str]]:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    memory_kib = int(first_value("/proc/meminfo", "MemTotal").split()[0])
    if node is not None:
        broker = f"{node.version} (Debian package {rabbitmq.package_version()})"
    elif rabbitmq.installed():
        broker = f"not run (Debian package {rabbitmq.package_version()} installed)"
    else:
        broker = "not installed"
    return [
        ("CPU", first_value("/proc/cpuinfo", "model name")),
        ("cores", str(os.cpu_count())),
        ("memory", f"{memory_kib / 1024**2:.1f} GiB"),
        ("OS", first_value("/etc/os-release", "PRETTY_NAME")),
        ("kernel", platform.release()),
        ("brokers' data directories", f"under `{data_dir}`, on {fs_type(data_dir)}"),
        ("Python", platform.python_version()),
        ("uvloop", package("uvloop")),
        ("buzon", f"{package('buzon')} (git {commit or 'unknown'})"),
        ("RabbitMQ", broker),
        ("Erlang/OTP", node.erlang if node else "-"),
    ]
