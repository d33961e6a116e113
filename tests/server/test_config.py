from __future__ import annotations

from pathlib import Path

import pytest

from buzon.cli.main import main
from buzon.server.config import OPTIONS, ConfigError, disk_floor, load_settings


def flags(**given: str) -> dict[str, str | None]:
    return dict(given)


def test_defaults_listen_on_loopback_only(tmp_path: Path) -> None:
    settings = load_settings({}, environ={}, config_file=_missing(tmp_path))
    assert settings.host == "127.0.0.1"
    assert settings.stomp_port == 61613
    assert settings.admin_password is None


def _missing(tmp_path: Path) -> Path:
    path = tmp_path / "buzon.toml"
    path.write_text("")
    return path


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = tmp_path / "buzon.toml"
    config.write_text('stomp-port = 1111\nhost = "0.0.0.0"\nlog-level = "debug"\n')
    settings = load_settings(
        flags(stomp_port="3333"),
        environ={"BUZON_STOMP_PORT": "2222", "BUZON_HOST": "127.0.0.2"},
        config_file=config,
    )
    assert (settings.stomp_port, settings.host, settings.log_level) == (3333, "127.0.0.2", "debug")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"stomp_port": "70000"}, "invalid --stomp-port '70000': must be 0..65535"),
        ({"stomp_port": "x"}, "invalid --stomp-port 'x': not a number"),
        ({"handshake_timeout": "0"}, "invalid --handshake-timeout '0': must be more than 0"),
        ({"log_level": "loud"}, "invalid --log-level 'loud': must be one of"),
        ({"slow_consumer_policy": "panic"}, "invalid --slow-consumer-policy 'panic'"),
        ({"backlog_window": "0"}, "invalid --backlog-window '0': must be 1..1000000"),
        ({"backlog_window": "-5"}, "invalid --backlog-window '-5': must be 1..1000000"),
        ({"backlog_window": "10000000000"}, "invalid --backlog-window '10000000000': must be"),
        ({"backlog_window": "many"}, "invalid --backlog-window 'many': not a number"),
        (
            {"backlog_window_bytes": "0"},
            "invalid --backlog-window-bytes '0': must be 1..1073741824",
        ),
        ({"min_free_disk": "lots"}, "invalid --min-free-disk 'lots': must be auto, a number of"),
        ({"min_free_disk": "100%"}, "invalid --min-free-disk '100%': a percentage must be"),
        ({"min_free_disk": "-1"}, "invalid --min-free-disk '-1': must be 0 or more"),
    ],
)
def test_bad_values_are_named_in_one_line(
    tmp_path: Path, given: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(given, environ={}, config_file=_missing(tmp_path))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"BUZON_ADMIN_PASSWORD": ""}, config_file=_missing(tmp_path))
    assert str(caught.value) == "invalid BUZON_ADMIN_PASSWORD (hidden): must not be empty"


def test_unknown_or_broken_config_file_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "buzon.toml"
    config.write_text("stomp-prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'stomp-prot'"):
        load_settings({}, environ={}, config_file=config)
    config.write_text("stomp-port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, environ={}, config_file=config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, environ={}, config_file=tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("setting", "total", "floor"),
    [
        ("auto", 4 * 1024**2, 4 * 1024**2 // 20),  # a small volume: 5% of it
        ("auto", 1024**4, 1024**3),  # a large one: 1 GiB
        ("10%", 1_000_000, 100_000),
        ("123456", 1_000_000, 123_456),
        ("0", 1_000_000, 0),
    ],
)
def test_the_free_disk_floor_is_bytes_a_share_or_the_smaller_of_1_gib_and_5_percent(
    setting: str, total: int, floor: int
) -> None:
    assert disk_floor(setting, total) == floor


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["serve", "--help"])
    assert leaving.value.code == 0
    shown = capsys.readouterr().out
    for option in OPTIONS:
        assert option.secret or option.flag in shown
    assert "a percentage (5%)" in shown
    assert "BUZON_DEDUP_MAX_KEYS" in shown
