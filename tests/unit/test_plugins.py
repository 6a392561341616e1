"""Plugin discovery, validation, ordering and isolation, against the installed sample plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backplane import hookspecs
from backplane.loading import load_plugins
from backplane.plugins import KERNEL_PLUGIN, PluginLoadError, SkipReason, Status
from tests.conftest import make_settings

EXPECTED_SKIPS = {
    "broken_import": (SkipReason.IMPORT_ERROR, "bp_sample_this_module_does_not_exist"),
    "incompatible": (SkipReason.INCOMPATIBLE_CORE, ">=99.0"),
    "cycle_a": (SkipReason.DEPENDENCY_CYCLE, "cycle_b"),
    "cycle_b": (SkipReason.DEPENDENCY_CYCLE, "cycle_a"),
    "missing_dep": (SkipReason.MISSING_DEPENDENCY, "not_installed"),
    "bad_settings": (SkipReason.INVALID_SETTINGS, "BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT"),
}


def test_good_plugin_loads_after_kernel(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir))
    assert plugins.loaded[0] == KERNEL_PLUGIN
    assert "kitchen_sink" in plugins.loaded
    record = plugins.records["kitchen_sink"]
    assert record.status is Status.LOADED
    assert record.version == "0.1.0"
    assert record.distribution == "backplane-sample-kitchen-sink"


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_SKIPS.items()))
def test_broken_plugin_skipped_with_its_reason(
    data_dir: Path, name: str, expected: tuple[SkipReason, str]
) -> None:
    plugins = load_plugins(make_settings(data_dir))
    record = plugins.records[name]
    code, fragment = expected
    assert record.status is Status.SKIPPED
    assert record.reason_code is code
    assert fragment in (record.reason or "")
    assert name not in plugins.loaded
    assert plugins.manager.get_plugin(name) is None


def test_kitchen_sink_implements_every_hook(data_dir: Path) -> None:
    """The sample is our proof that every hook in the contract can be implemented."""
    plugins = load_plugins(make_settings(data_dir))
    specs = {n for n, f in vars(hookspecs).items() if hasattr(f, "backplane_spec")}
    assert specs, "hook specs not found"
    assert set(plugins.records["kitchen_sink"].hooks) == specs


def test_strict_mode_fails_naming_each_plugin(data_dir: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        load_plugins(make_settings(data_dir, {"BACKPLANE_STRICT_PLUGINS": "1"}))
    for name in EXPECTED_SKIPS:
        assert name in str(info.value)


def test_strict_mode_passes_when_only_good_plugins_selected(data_dir: Path) -> None:
    env = {"BACKPLANE_STRICT_PLUGINS": "true", "BACKPLANE_PLUGINS": "kitchen_sink"}
    plugins = load_plugins(make_settings(data_dir, env))
    assert plugins.loaded == [KERNEL_PLUGIN, "kitchen_sink"]


def test_empty_selection_loads_only_the_kernel(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""}))
    assert plugins.loaded == [KERNEL_PLUGIN]
    assert list(plugins.records) == [KERNEL_PLUGIN]


def test_selection_naming_an_unknown_plugin_records_it(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink,nope"}))
    assert plugins.loaded == [KERNEL_PLUGIN, "kitchen_sink"]
    assert plugins.records["nope"].reason_code is SkipReason.NOT_FOUND


def test_selected_plugin_whose_dependency_is_not_selected_is_skipped(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "cycle_a"}))
    assert plugins.records["cycle_a"].reason_code is SkipReason.MISSING_DEPENDENCY


def test_plugin_settings_validated_and_converted_from_environment(data_dir: Path) -> None:
    env = {
        "BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT": "http://127.0.0.1:9",
        "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S": "7",
    }
    plugins = load_plugins(make_settings(data_dir, env))
    assert plugins.records["bad_settings"].status is Status.LOADED
    assert plugins.settings_for("bad_settings").timeout_s == 7


def test_invalid_plugin_setting_names_the_variable(data_dir: Path) -> None:
    env = {
        "BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT": "http://127.0.0.1:9",
        "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S": "soon",
    }
    record = load_plugins(make_settings(data_dir, env)).records["bad_settings"]
    assert record.reason_code is SkipReason.INVALID_SETTINGS
    assert record.reason == "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S: Expected `int`, got `str`"


def test_missing_required_plugin_setting_names_the_variable_to_set(data_dir: Path) -> None:
    record = load_plugins(make_settings(data_dir)).records["bad_settings"]
    assert record.reason == "BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT: required, not set"


def test_invalid_plugin_setting_in_the_file_names_the_file_key(data_dir: Path) -> None:
    config = data_dir.parent / "backplane.toml"
    config.write_text('[plugins.bad_settings]\nendpoint = 9\ntimeout_s = "7"\n')
    env = {"BACKPLANE_CONFIG": str(config)}
    record = load_plugins(make_settings(data_dir, env)).records["bad_settings"]
    assert record.reason == f"{config}: plugins.bad_settings.endpoint: Expected `str`, got `int`"


def test_plugin_variable_nested_too_deep_names_itself(data_dir: Path) -> None:
    env = {
        "BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT": "http://127.0.0.1:9",
        "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S__MAX": "7",
    }
    record = load_plugins(make_settings(data_dir, env)).records["bad_settings"]
    assert record.reason == (
        "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S__MAX: "
        "BACKPLANE_PLUGIN__BAD_SETTINGS__TIMEOUT_S is a single value, not a section"
    )


def test_unknown_plugin_setting_is_rejected(data_dir: Path) -> None:
    env = {"BACKPLANE_PLUGIN__KITCHEN_SINK__GREETNG": "typo"}
    record = load_plugins(make_settings(data_dir, env)).records["kitchen_sink"]
    assert record.reason_code is SkipReason.INVALID_SETTINGS
    reason = record.reason or ""
    assert reason.startswith(
        "BACKPLANE_PLUGIN__KITCHEN_SINK__GREETNG: unknown setting 'greetng' (known: "
    )
    known = reason.partition("(known: ")[2].rstrip(")").split(", ")
    assert "BACKPLANE_PLUGIN__KITCHEN_SINK__GREETING" in known
    assert known == sorted(known)


def test_registration_hook_collects_items_per_plugin(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir))

    def make(plugin: str, *items: Any) -> list[Any]:
        return list(items)

    permissions = plugins.collect("register_permissions", make)
    from_sink = [(p, i.code) for p, i in permissions if p == "kitchen_sink"]
    assert from_sink == [("kitchen_sink", "kitchen_sink.notes.write")]
    assert ("core", "tenant.read") in [(p, i.code) for p, i in permissions]


def test_plugin_failing_in_a_registration_hook_is_isolated(data_dir: Path) -> None:
    plugins = load_plugins(make_settings(data_dir))

    def make(plugin: str, *items: Any) -> list[Any]:
        if plugin == "kitchen_sink":
            raise ValueError("bad meter")
        return list(items)

    assert all(plugin != "kitchen_sink" for plugin, _ in plugins.collect("register_meters", make))
    record = plugins.records["kitchen_sink"]
    assert record.reason_code is SkipReason.HOOK_ERROR
    assert "register_meters raised ValueError: bad meter" in (record.reason or "")
    assert "kitchen_sink" not in plugins.loaded
    routes_from = {name for name, _ in plugins.implementations("register_routes")}
    assert "core" in routes_from
    assert "kitchen_sink" not in routes_from


def test_plugin_failing_in_a_hook_stops_start_up_in_strict_mode(data_dir: Path) -> None:
    env = {"BACKPLANE_STRICT_PLUGINS": "1", "BACKPLANE_PLUGINS": "kitchen_sink"}
    plugins = load_plugins(make_settings(data_dir, env))

    def make(plugin: str, *items: Any) -> list[Any]:
        if plugin == "kitchen_sink":
            raise ValueError("bad meter")
        return list(items)

    with pytest.raises(PluginLoadError, match="kitchen_sink"):
        plugins.collect("register_meters", make)


def test_async_lifecycle_hooks_are_awaited(data_dir: Path) -> None:
    import asyncio

    from bp_sample_kitchen_sink import plugin as kitchen_sink

    class FakeKernel:
        plugin = "core"

        def for_plugin(self, name: str) -> str:
            return f"view for {name}"

    # kitchen_sink alone: other installed plugins' hooks use the real kernel's services
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"}))
    results = asyncio.run(plugins.acall("startup", kernel=FakeKernel()))
    assert ("kitchen_sink", None) in results
    assert kitchen_sink.EVENTS[-1] == ("startup", "view for kitchen_sink")
