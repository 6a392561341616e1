"""Data rights: the privacy API and its permission, and the kernel's own tables under the
export, erasure and tenant-deletion hooks (identity, billing, webhooks, models, tasks)."""

from __future__ import annotations

from typing import Any

from backplane._contract import Permission
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.privacy.routes import ROUTES

    register(*ROUTES)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="privacy.manage",
            roles=("owner", "admin"),
            description="Export or erase one person's data in the tenant (every plugin's)",
        )
    )


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane.privacy.kernel_data import export_kernel_data

    await export_kernel_data(kernel, archive, subject)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane.privacy.kernel_data import erase_kernel_data

    return await erase_kernel_data(kernel, subject)


@hookimpl
async def tenant_deleting(kernel: Any, after_commit: Any) -> None:
    from backplane.privacy.kernel_data import delete_kernel_data

    await delete_kernel_data(kernel, after_commit)
