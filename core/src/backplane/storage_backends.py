"""The storage backend a setting names, among those ``register_storage_backends`` gave.

Model files (``storage.backend``) and tenant files (``files.backend``) pick from the same
registrations, with the same rules: a later plugin's backend of a name replaces an earlier
one's (the kernel's ``local`` included), and a name that no capable backend carries is an error
naming the setting and the backends that could have served. One function, so both stores keep
those rules alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backplane._contract import StorageBackend
from backplane.plugins import PluginSet


def _checked(plugin: str, *backends: Any) -> list[StorageBackend]:
    for backend in backends:
        if not isinstance(backend, StorageBackend):
            raise TypeError(f"register_storage_backends expects StorageBackend, got {backend!r}")
    return list(backends)


def choose_storage_backend(
    plugins: PluginSet,
    *,
    setting: str,
    name: str,
    opener: Callable[[StorageBackend], Any],
    missing: Callable[[str], LookupError],
    what: str = "",
) -> Any:
    """``opener(backend)`` of the backend called ``name``, opened with the public settings.

    ``opener`` picks which of the backend's openers applies (``open`` or ``open_files``);
    a backend without it does not count. ``missing(message)`` builds the error raised when no
    capable backend has that name; the message names where ``setting`` came from and what was
    registered. ``what`` describes the capability in that message (" that stores files").
    """
    backends = {b.name: b for _, b in plugins.collect("register_storage_backends", _checked)}
    chosen = backends.get(name)
    if chosen is None or opener(chosen) is None:
        env = "BACKPLANE_" + setting.upper().replace(".", "__")
        where = plugins.settings.sources.get(setting, env)
        able = sorted(n for n, backend in backends.items() if opener(backend) is not None)
        raise missing(
            f"{where}: no storage backend {name!r}{what} (registered: {', '.join(able) or 'none'})"
        )
    return opener(chosen)(plugins.public_settings)
