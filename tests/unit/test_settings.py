"""Settings: environment over file over defaults, and errors that name the culprit."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from backplane._config import Given, Key, Schema
from backplane.secret_key import secret_key
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
        ("BACKPLANE_SERVER__MAX_JSON_DEPTH", "0", "Expected `int` >= 1"),
        ("BACKPLANE_SERVER__MAX_JSON_DEPTH", "257", "Expected `int` <= 256"),
        ("BACKPLANE_LIMITS__MODEL_UPLOADS_PER_HOUR", "0", "Expected `int` >= 1"),
        ("BACKPLANE_DB__SQLITE_SYNCHRONOUS", "SOMETIMES", "(one of: FULL, NORMAL)"),
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
        threading.Thread(target=lambda: results.append(secret_key(load_settings(environ=env))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(results[0]) >= 43  # 48 random bytes, base64url
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert secret_key(load_settings(environ=env)) == results[0]


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"BACKPLANE_SECRET_KEY: .* at least 32"):
        load_settings(environ={"BACKPLANE_SECRET_KEY": "hunter2"})


def test_configured_secret_wins(tmp_path: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(tmp_path), "BACKPLANE_SECRET_KEY": "x" * 40}
    assert secret_key(load_settings(environ=env)) == "x" * 40
    assert not (tmp_path / "secret_key").exists()


def test_wrong_type_in_file_names_the_file_key_and_every_other_problem(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text('demo_data = "perhaps"\n[db]\npool_size = "many"\n[tasks]\nthreads = 2\n')
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"BACKPLANE_CONFIG": str(config)})
    message = str(info.value)
    assert message.startswith(f"{config}: demo_data: Expected `bool`, got `str`")
    assert f"{config}: db.pool_size: Expected `int`, got `str`" in message
    assert "tasks" not in message


def test_a_path_of_the_wrong_type_names_the_file_key(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text("data_dir = 5\n")
    with pytest.raises(SettingsError, match=f"^{config}: data_dir: Expected `Path`, got `int`$"):
        load_settings(environ={"BACKPLANE_CONFIG": str(config)})


def test_environment_wins_over_an_invalid_file_value(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text('[server]\nport = "high"\n')
    settings = load_settings(
        environ={"BACKPLANE_CONFIG": str(config), "BACKPLANE_SERVER__PORT": "8300"}
    )
    assert settings.server.port == 8300
    assert settings.sources["server.port"] == "BACKPLANE_SERVER__PORT"


def test_constraint_in_file_names_the_file_key(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text('[db]\nsqlite_synchronous = "OFF"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"BACKPLANE_CONFIG": str(config)})
    assert str(info.value) == (
        f"{config}: db.sqlite_synchronous: Invalid enum value 'OFF' (one of: FULL, NORMAL)"
    )


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("BACKPLANE_SERVER__PORT__NUMBER", "BACKPLANE_SERVER__PORT is a single value"),
        ("BACKPLANE_DATA_DIR__X", "BACKPLANE_DATA_DIR is a single value"),
        ("BACKPLANE_SERVER", "a section, not a value (known: BACKPLANE_SERVER__ACCESS_LOG,"),
        (
            "BACKPLANE_SERVR__PORT",
            "unknown setting 'servr' (known: BACKPLANE_AUDIT, BACKPLANE_AUTH,",
        ),
    ],
)
def test_variable_at_the_wrong_depth_names_itself(variable: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={variable: "1"})
    assert str(info.value).startswith(f"{variable}: {expected}")


def test_unknown_nested_field_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"BACKPLANE_SERVER__PROT": "1"})
    assert str(info.value).startswith("BACKPLANE_SERVER__PROT: unknown setting 'prot' (known: ")
    assert "BACKPLANE_SERVER__PORT" in str(info.value)


def test_empty_values() -> None:
    """Empty is the empty list for a list, None for an optional non-text field, else itself."""
    settings = load_settings(
        environ={
            "BACKPLANE_PLUGINS": "",
            "BACKPLANE_INFERENCE__THREADS": "",
            "BACKPLANE_AUTH__PASSWORD_MAX_CONCURRENCY": "",
            "BACKPLANE_BILLING__DEFAULT_PLAN": "",
        }
    )
    assert settings.plugins == []
    assert settings.inference.threads is None
    assert settings.auth.password_max_concurrency is None
    assert settings.billing.default_plan == ""
    with pytest.raises(SettingsError, match=r"^BACKPLANE_SERVER__PORT: Expected `int`"):
        load_settings(environ={"BACKPLANE_SERVER__PORT": ""})


def test_keyword_arguments_win_and_are_named() -> None:
    from backplane.settings import ServerSettings

    environ = {"BACKPLANE_SERVER__PORT": "9000", "BACKPLANE_DEMO_DATA": "1"}
    settings = load_settings(environ=environ, server=ServerSettings(host="0.0.0.0"), demo_data=0)
    assert (settings.server.host, settings.server.port, settings.demo_data) == (
        "0.0.0.0",
        8000,
        False,
    )
    assert settings.sources["demo_data"] == "argument demo_data"
    assert "server.port" not in settings.sources
    with pytest.raises(SettingsError, match=r"^argument demo_data: Expected `bool`"):
        load_settings(environ={}, demo_data="perhaps")


def test_a_database_url_from_the_file_is_named_by_its_key(tmp_path: Path) -> None:
    config = tmp_path / "backplane.toml"
    config.write_text('[db]\nmigration_url = "mysql://owner@db/app"\n')
    settings = load_settings(environ={"BACKPLANE_CONFIG": str(config)})
    with pytest.raises(SettingsError, match=f"^{config}: db.migration_url: unsupported"):
        settings.resolved_migration_url()


class _Inner(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    retries: Annotated[int, msgspec.Meta(ge=0)] = 3


class _Outer(msgspec.Struct, forbid_unknown_fields=True):
    inner: _Inner
    tags: frozenset[str] = frozenset()
    extra: dict[str, int] = msgspec.field(default_factory=dict)


def _name(key: Key) -> str:
    return "X_" + "__".join(key).upper()


def test_schema_walks_nested_sections_and_keeps_tables_of_dict_fields() -> None:
    schema = Schema(_Outer, _name)
    given = schema.from_table(
        {"inner": {"url": "u", "retries": "4"}, "extra": {"a": 1}},
        lambda key: "t: " + ".".join(key),
    )
    assert set(given) == {("inner", "url"), ("inner", "retries"), ("extra",)}
    given[("tags",)] = Given("b, a", "X_TAGS")
    assert schema.build(given) == _Outer(_Inner("u", 4), frozenset({"a", "b"}), {"a": 1})


def test_schema_names_a_required_field_of_a_required_section() -> None:
    schema = Schema(_Outer, _name)
    with pytest.raises(SettingsError, match=r"^X_INNER__URL: required, not set$"):
        schema.build({})
    with pytest.raises(SettingsError) as info:
        schema.build({("inner", "retries"): Given("-1", "X_INNER__RETRIES")})
    assert (
        str(info.value) == "X_INNER__RETRIES: Expected `int` >= 0; X_INNER__URL: required, not set"
    )


def test_schema_refuses_a_settings_type_that_is_not_a_struct() -> None:
    @dataclasses.dataclass
    class NotAStruct:
        url: str

    with pytest.raises(SettingsError, match=r"is not a msgspec\.Struct"):
        Schema(NotAStruct, _name)


class _Lenient(msgspec.Struct):
    """A plugin's settings struct without ``forbid_unknown_fields``."""

    greeting: str = "hello"


def test_an_unknown_key_is_refused_even_where_the_struct_allows_unknown_fields() -> None:
    schema = Schema(_Lenient, lambda key: "BACKPLANE_PLUGIN__LENIENT__" + "__".join(key).upper())
    given = {("greetng",): Given("typo", "BACKPLANE_PLUGIN__LENIENT__GREETNG")}
    with pytest.raises(SettingsError) as refused:
        schema.build(given)
    assert str(refused.value) == (
        "BACKPLANE_PLUGIN__LENIENT__GREETNG: unknown setting 'greetng' "
        "(known: BACKPLANE_PLUGIN__LENIENT__GREETING)"
    )
