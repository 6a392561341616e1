"""Settings: environment over file over defaults, and errors that name the culprit."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backplane.settings import SettingsError, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.data_dir == tmp_path / "var"
    assert (
        settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path}/var/backplane.sqlite3"
    )
    assert settings.plugins is None
    assert settings.strict_plugins is False
    assert settings.server.port == 8000


def test_environment_values_are_converted(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "BACKPLANE_DATA_DIR": str(tmp_path),
            "BACKPLANE_STRICT_PLUGINS": "1",
            "BACKPLANE_SERVER__PORT": "9000",
            "BACKPLANE_PLUGINS": " a, b ,,c ",
            "BACKPLANE_DB__HEALTH_TIMEOUT_S": "0.5",
        }
    )
    assert settings.strict_plugins is True
    assert settings.server.port == 9000
    assert settings.plugins == ["a", "b", "c"]
    assert settings.db.health_timeout_s == 0.5


def test_empty_plugin_list_means_none() -> None:
    assert load_settings(environ={"BACKPLANE_PLUGINS": ""}).plugins == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BACKPLANE_SERVER__PORT", "eighty", "Expected `int`"),
        ("BACKPLANE_STRICT_PLUGINS", "maybe", "Expected `bool`"),
        ("BACKPLANE_DB__POOL_SIZE", "1.5", "Expected `int`"),
    ],
)
def test_invalid_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={variable: value})
    assert str(info.value).startswith(f"{variable}: ")
    assert expected in str(info.value)


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(SettingsError, match="BACKPLANE_DATABSE_URL: unknown setting"):
        load_settings(environ={"BACKPLANE_DATABSE_URL": "sqlite://"})


def test_unknown_nested_field_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="BACKPLANE_SERVER__PROT"):
        load_settings(environ={"BACKPLANE_SERVER__PROT": "1"})


def test_tooling_variables_are_ignored() -> None:
    load_settings(environ={"BACKPLANE_TEST_REQUIRE_SERVICES": "postgres"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_urls_map_to_async_drivers(url: str, expected: str) -> None:
    settings = load_settings(environ={"BACKPLANE_DATABASE_URL": url})
    assert settings.resolved_database_url() == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_url_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="BACKPLANE_DATABASE_URL"):
        load_settings(environ={"BACKPLANE_DATABASE_URL": url})


def test_repr_hides_secrets() -> None:
    settings = load_settings(
        environ={
            "BACKPLANE_DATABASE_URL": "postgresql://app:hunter2hunter2@db/prod",
            "BACKPLANE_SECRET_KEY": "s3cr3t-value-not-to-log-0123456789abcdef",
        }
    )
    text = repr(settings)
    assert "hunter2hunter2" not in text
    assert "s3cr3t-value-not-to-log" not in text
    assert "app:***@db" in text


def test_toml_file_with_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text(
        'strict_plugins = true\n[server]\nport = 8100\nhost = "0.0.0.0"\n'
        '[plugins.kitchen_sink]\ngreeting = "hi"\n'
    )
    settings = load_settings(
        environ={
            "BACKPLANE_CONFIG": str(config),
            "BACKPLANE_SERVER__PORT": "8200",
            "BACKPLANE_PLUGIN__KITCHEN_SINK__MAX_NOTES": "3",
        }
    )
    assert settings.strict_plugins is True
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8200
    assert settings.plugin_settings == {"kitchen_sink": {"greeting": "hi", "max_notes": "3"}}


def test_invalid_value_in_file_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text('[server]\nport = "high"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"BACKPLANE_CONFIG": str(config)})
    assert f"{config}: server.port" in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("port = ", "not valid TOML"), (None, "no such file")],
)
def test_unreadable_config_file(tmp_path: Path, content: str | None, expected: str) -> None:
    config = tmp_path / "backplane.toml"
    if content is not None:
        config.write_text(content)
    with pytest.raises(SettingsError, match=expected):
        load_settings(environ={"BACKPLANE_CONFIG": str(config)})


def test_malformed_plugin_variable() -> None:
    with pytest.raises(SettingsError, match="BACKPLANE_PLUGIN__KITCHEN_SINK"):
        load_settings(environ={"BACKPLANE_PLUGIN__KITCHEN_SINK": "x"})


def test_generated_secret_is_stable_private_and_shared(tmp_path: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(tmp_path / "var")}
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(load_settings(environ=env).resolved_secret_key())
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(results[0]) >= 43  # 48 random bytes, base64url
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_settings(environ=env).resolved_secret_key() == results[0]


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"BACKPLANE_SECRET_KEY: .* at least 32"):
        load_settings(environ={"BACKPLANE_SECRET_KEY": "hunter2"})


def test_configured_secret_wins(tmp_path: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(tmp_path), "BACKPLANE_SECRET_KEY": "x" * 40}
    assert load_settings(environ=env).resolved_secret_key() == "x" * 40
    assert not (tmp_path / "secret_key").exists()
