"""What the LRS adds to the education plugin's hooks (``plugin.py`` calls these lazily, so
the LRS's modules load only when the kernel asks)."""

from __future__ import annotations

from typing import Any

from backplane import Permission

MANAGE = "education.xapi.manage"


def register_routes(register: Any) -> None:
    from litestar import Router

    from backplane_education.xapi import (
        routes_documents,
        routes_head,
        routes_misc,
        routes_statements,
    )
    from backplane_education.xapi.http import ERROR_HANDLERS
    from backplane_education.xapi.routes_credentials import XapiCredentialsController

    lrs = [
        *routes_statements.HANDLERS,
        *routes_documents.HANDLERS,
        *routes_misc.HANDLERS,
        *routes_head.HANDLERS,
    ]
    register(
        Router(path="/", route_handlers=lrs, exception_handlers=ERROR_HANDLERS, tags=["xapi"]),
        prefix="/xapi",
    )
    register(
        Router(
            path="/",
            route_handlers=[*routes_misc.PUBLIC_HANDLERS, *routes_head.PUBLIC_HANDLERS],
            exception_handlers=ERROR_HANDLERS,
            tags=["xapi"],
        ),
        prefix="/xapi",
        public=True,
    )
    register(XapiCredentialsController)


def register_auth_backends(register: Any) -> None:
    from backplane_education.xapi.auth import BACKEND

    register(BACKEND)


def permissions() -> list[Permission]:
    return [
        Permission(
            code=MANAGE,
            roles=("owner", "admin"),
            description="Create, list and revoke the tenant's xAPI (LRS) credentials",
        )
    ]


async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_education.xapi.privacy import export

    await export(kernel, archive, subject)


async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_education.xapi.privacy import erase

    return await erase(kernel, subject)
