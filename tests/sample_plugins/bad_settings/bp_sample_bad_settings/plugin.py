"""A plugin with a required setting (``BACKPLANE_PLUGIN__BAD_SETTINGS__ENDPOINT``)."""

from typing import Any

import msgspec

from backplane import PluginInfo, hookimpl


class BadSettingsSettings(msgspec.Struct, forbid_unknown_fields=True):
    endpoint: str
    timeout_s: int = 5


plugin = PluginInfo(name="bad_settings", requires_core=">=0.1", settings=BadSettingsSettings)


@hookimpl
def register_routes(register: Any) -> None:
    from litestar import get
    from litestar.di import NamedDependency

    @get("/ping", sync_to_thread=False)
    def ping(plugin_settings: NamedDependency[Any]) -> dict[str, str]:
        return {"endpoint": plugin_settings.endpoint}

    register(ping)
