"""Exposing a stored artifact to a tenant as one of its models, under a name the tenant
chose (``kernel.models.expose_artifact`` / ``kernel.models.withdraw``): how a plugin such as
the marketplace lets a tenant call, through the V2 API and ``kernel.models.infer``, a model
that someone else published, without the tenant ever holding the file.

The tenant's registry gains an ordinary version row whose ``source`` names the plugin's kind
(``marketplace``, say), pointing at the artifact by its SHA-256 in the kernel's
content-addressed store; the kernel verifies the bytes against that digest whenever it loads
them. There is no route that returns an artifact's bytes, for any source.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record as audit
from backplane.inference.artifacts import ArtifactReport
from backplane.inference.models import ModelVersion
from backplane.inference.registry import (
    RegistryError,
    _free_version,
    check_name,
    delete_model,
    lock_model_name,
)
from backplane.inference.runtime import ModelCatalog

SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,19}\Z")


async def expose_artifact(
    db: AsyncSession,
    catalog: ModelCatalog,
    *,
    tenant_id: uuid.UUID,
    name: str,
    report: ArtifactReport,
    source: str,
    version: str | None = None,
    description: str = "",
    created_by: uuid.UUID | None = None,
) -> str:
    """Register the stored artifact ``report.sha256`` as the tenant's ``name``/``version``
    (the next number when None); the version registered. :class:`RegistryError` (its
    ``status_code``) for a bad or taken name or version, ``ArtifactMissingError`` when the
    store lacks the artifact or holds other bytes under its digest."""
    if not SOURCE.match(source) or source == "upload":
        raise ValueError(f"source {source!r}: 1-20 of a-z, 0-9, '_', not 'upload'")
    check_name(catalog, name, version)
    await asyncio.to_thread(catalog.store.get, report.sha256)  # present and intact
    settings = catalog.settings.inference
    await lock_model_name(db, tenant_id, name)
    version = await _free_version(db, tenant_id, name, version)
    batch = settings.default_max_batch_size
    row = ModelVersion(
        tenant_id=tenant_id,
        name=name,
        version=version,
        sha256=report.sha256,
        size_bytes=report.size,
        source=source,
        description=description[:500],
        signature={"inputs": report.inputs, "outputs": report.outputs},
        dynamic_batch=report.dynamic_batch and batch > 1,
        max_batch_size=batch if report.dynamic_batch else 0,
        max_queue_delay_us=settings.default_max_queue_delay_us,
        created_by=created_by,
    )
    db.add(row)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise RegistryError(f"model {name!r} version {version!r} exists", 409) from None
    await audit(
        db,
        "model.uploaded",
        tenant_id=tenant_id,
        target=("model", f"{name}/{version}"),
        details={"sha256": row.sha256, "size_bytes": row.size_bytes, "source": source},
    )
    catalog.forget(tenant_id, name)
    return version


async def withdraw(db: AsyncSession, catalog: ModelCatalog, tenant_id: uuid.UUID, name: str) -> int:
    """Remove every version of the tenant's model ``name``; how many (404 if none)."""
    return await delete_model(db, catalog, tenant_id, name, None)
