"""Storage: the data directory, where stored objects (model files and tenant files) live by
default."""

from __future__ import annotations

from typing import Any

from backplane._contract import StorageBackend
from backplane.hookspecs import hookimpl


def _open_local(settings: Any) -> Any:
    from backplane.inference.storage import local_store

    return local_store(settings.data_dir)


def _open_local_files(settings: Any) -> Any:
    from backplane.files.storage import local_file_store

    return local_file_store(settings.data_dir)


@hookimpl
def register_storage_backends(register: Any) -> None:
    register(StorageBackend(name="local", open=_open_local, open_files=_open_local_files))
