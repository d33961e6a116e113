from __future__ import annotations

from pathlib import Path

import pytest

from buzon.server.config import ConfigError, load_settings


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
