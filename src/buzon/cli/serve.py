"""``buzon serve``: start the broker in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from buzon.cli.logs import configure as configure_logging
from buzon.cli.tuning import tune_allocator, tune_collector
from buzon.server.config import OPTIONS, Settings, load_settings


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Flags override BUZON_* variables, which override buzon.toml.",
    )
    for option in OPTIONS:
        if option.secret:
            continue  # secrets come from the environment or the file, never the process list
        if option.switch:
            parser.add_argument(
                option.flag,
                dest=option.field,
                action="store_const",
                const="false",
                default=None,
                help=f"{option.help} [env {option.env}=false]",
            )
        else:
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
    flags = {option.field: getattr(args, option.field, None) for option in OPTIONS}
    settings = load_settings(flags, config_file=args.config)
    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level != "debug":
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    tune_allocator()
    _run_loop(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    # Imported here: the server pulls in the HTTP stack, which other commands do not need.
    from buzon.server.app import BuzonServer

    server = BuzonServer(settings)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def request_stop() -> None:
        if not stopping:
            stopping.append(loop.create_task(server.stop()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    if server.generated_password is not None:
        print(
            f"admin login: {settings.admin_user}  password (generated, shown once):"
            f" {server.generated_password}\n"
            "  set BUZON_ADMIN_PASSWORD (and BUZON_ADMIN_USER) to choose your own",
            flush=True,
        )
    elif server.admin_existed and settings.admin_password is None and settings.storage != "memory":
        print(
            f"admin login: {settings.admin_user}  (password chosen or shown when the account"
            f" was created; lost it? run: {set_password_command(settings)})",
            flush=True,
        )
    print(f"buzon listening: {'  '.join(server.urls())}  (Ctrl-C stops)", flush=True)
    tune_collector()  # start-up is done (see tuning)
    await server.wait_stopped()


def set_password_command(settings: Settings) -> str:
    """The command that sets a new password for the admin of ``settings``'s data directory."""
    data_dir = shlex.quote(str(settings.data_dir))
    return f"buzon user set-password {shlex.quote(settings.admin_user)} --data-dir {data_dir}"


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
