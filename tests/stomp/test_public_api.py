"""Pin the public surface of buzon.stomp: other packages are written against it."""

from __future__ import annotations

import buzon.stomp


def test_all_is_pinned() -> None:
    assert sorted(buzon.stomp.__all__) == sorted(
        [
            "DEFAULT_LIMITS",
            "HEARTBEAT",
            "NEED_DATA",
            "PRE_LOGIN_LIMITS",
            "TRANSITIONS",
            "Abort",
            "Ack",
            "Begin",
            "Command",
            "Commit",
            "ConnState",
            "Connect",
            "Connected",
            "Disconnect",
            "Error",
            "Event",
            "Frame",
            "FrameParser",
            "Headers",
            "Heartbeat",
            "HeartbeatTimer",
            "Message",
            "Nack",
            "NeedData",
            "ParserLimits",
            "Receipt",
            "Role",
            "Send",
            "StompConnection",
            "Subscribe",
            "Unsubscribe",
            "header",
            "negotiate",
            "parse_heart_beat",
            "serialize",
        ]
    )
    for name in buzon.stomp.__all__:
        assert hasattr(buzon.stomp, name), name


LEAVES = {"buzon.errors", "buzon.heartbeats"}


def test_stomp_imports_only_the_standard_library_errors_and_heartbeats() -> None:
    import ast
    import pathlib
    import sys

    package = pathlib.Path(buzon.stomp.__file__).parent
    source = package.parent
    leaves = [source / f"{name.split('.')[1]}.py" for name in LEAVES]
    for module in [*package.glob("*.py"), *leaves]:
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                # the errors, and heart-beat deadlines shared with AMQP (both standard
                # library only themselves)
                allowed = name in LEAVES or name.startswith("buzon.stomp")
                assert allowed or (top != "buzon" and top in sys.stdlib_module_names), (
                    f"{module.name} imports {name}"
                )
                assert top not in {"asyncio", "socket"}, f"{module.name} imports {name}"
