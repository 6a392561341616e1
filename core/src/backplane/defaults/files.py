"""Files: the tenant files API, the ``files.bytes`` gauge and its permissions (the local store
is registered with the model store, in :mod:`backplane.defaults.storage`)."""

from __future__ import annotations

from typing import Any

from backplane._contract import Meter, Permission
from backplane.defaults.identity import EVERYONE
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.files.routes import FilesController

    register(FilesController)


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code="files.bytes",
            unit="byte",
            aggregation="latest",
            description="Bytes of files the tenant stores (a gauge; a limit caps the level)",
        )
    )


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="files.read",
            roles=EVERYONE,
            description="List and download the tenant's files, and make signed download URLs",
        ),
        Permission(
            code="files.write",
            roles=("owner", "admin", "member"),
            description="Upload and delete the tenant's files",
        ),
    )
