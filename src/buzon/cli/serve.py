"""``buzon serve``: start the broker in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from buzon.auth import Credentials
from buzon.server.app import BuzonServer
from buzon.server.config import OPTIONS, ConfigError, Settings, load_settings

# 24 random bytes: 192 bits, far beyond online or offline guessing.
GENERATED_PASSWORD_BYTES = 24


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Flags override BUZON_* variables, which override buzon.toml.",
    )
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar="VALUE",
            help=f"{option.help} [env {option.env}]",
        )
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML file (default ./buzon.toml)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    flags = {option.field: getattr(args, option.field) for option in OPTIONS}
    settings = load_settings(flags, config_file=args.config)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    password = settings.admin_password
    if password is None:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        print(
            f"admin login: {settings.admin_user}  password (generated, shown once): {password}\n"
            "  set BUZON_ADMIN_PASSWORD (and BUZON_ADMIN_USER) to choose your own",
            flush=True,
        )
    credentials = Credentials.with_admin(settings.admin_user, password)
    _run_loop(_serve(settings, credentials))
    return 0


async def _serve(settings: Settings, credentials: Credentials) -> None:
    server = BuzonServer(settings, credentials)
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(
            detail=f"cannot listen on {settings.host}:{settings.stomp_port}: {exc.strerror}"
        ) from None
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def request_stop() -> None:
        if not stopping:
            stopping.append(loop.create_task(server.stop()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    print(
        f"buzon listening: stomp://{settings.host}:{server.stomp_port}  (Ctrl-C stops)",
        flush=True,
    )
    await server.wait_stopped()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (faster I/O, see benchmarks/), else asyncio."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
