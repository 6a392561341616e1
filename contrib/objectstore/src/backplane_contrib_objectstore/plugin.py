"""The plugin: registers the ``objectstore`` storage backend (``BACKPLANE_FILES__BACKEND=
objectstore``), configured by ``[plugins.objectstore]`` / ``BACKPLANE_PLUGIN__OBJECTSTORE__*``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from backplane import PluginInfo, StorageBackend, hookimpl


class ObjectStoreSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1)] = "memory:///"
    """Where the objects go: ``s3://bucket/prefix``, ``gs://bucket``, ``az://container``,
    ``file:///absolute/path`` or ``memory:///`` (tests only: gone with the process)."""
    options: dict[str, str] = msgspec.field(default_factory=dict)
    """obstore's configuration of that store (``aws_endpoint``, ``aws_region``,
    ``aws_access_key_id``, ...; see obstore's ``S3Config``/``GCSConfig``/``AzureConfig``).
    Credentials may instead come from the store's usual environment variables."""


plugin = PluginInfo(
    name="objectstore",
    requires_core=">=0.1,<0.2",
    settings=ObjectStoreSettings,
    description="Tenant files in S3-compatible and other object stores (obstore)",
)


def open_store(settings: ObjectStoreSettings) -> Any:
    """The obstore store ``settings`` describe, as a :class:`backplane.FileStore`."""
    from obstore.store import from_url

    from backplane_contrib_objectstore.store import ObjectFileStore

    return ObjectFileStore(from_url(settings.url, config=settings.options or None))


@hookimpl
def register_storage_backends(register: Any, plugin_settings: ObjectStoreSettings) -> None:
    register(StorageBackend(name="objectstore", open_files=lambda _: open_store(plugin_settings)))
