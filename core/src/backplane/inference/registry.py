"""Adding, listing and removing a tenant's own models: what the API and the CLI share.

An upload is validated (every static rule, then a trial load and run in a resource-limited
subprocess: :mod:`backplane.inference.validation`) before its bytes are stored or a row is
written, so nothing invalid is ever served. Versions are immutable: re-uploading a version is
a conflict, never an overwrite.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record as audit
from backplane.db.locks import lock_row
from backplane.identity.models import Tenant
from backplane.inference.cards import ModelCard
from backplane.inference.limits import reject
from backplane.inference.models import ModelVersion, model_rows
from backplane.inference.runtime import ModelCatalog, version_key
from backplane.inference.validation import ValidatedModel, ValidationLimits, validate_onnx
from backplane.settings import InferenceSettings

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}\Z")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}\Z")


class RegistryError(Exception):
    """A request the registry refuses; ``status_code`` is the HTTP answer."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelOut(msgspec.Struct, kw_only=True):
    name: str
    version: str
    source: str
    """``kernel`` or ``plugin`` (shipped: every tenant sees it), or ``upload``."""
    sha256: str | None = None
    size_bytes: int | None = None
    description: str = ""
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    signature: dict[str, Any] | None = None
    created_at: str | None = None
    card: ModelCard | None = None
    """A trained version's model card (``GET /api/models/{name}`` only; None for uploads)."""


def limits_from(settings: InferenceSettings) -> ValidationLimits:
    """The configured upload limits (``BACKPLANE_INFERENCE__*``) as the validator takes them."""
    return ValidationLimits(
        max_file_bytes=settings.max_upload_bytes,
        max_nodes=settings.max_nodes,
        max_nesting_depth=settings.max_nesting_depth,
        max_initializer_bytes=settings.max_initializer_bytes,
        max_shape_elements=settings.max_shape_elements,
        trial_timeout_seconds=settings.trial_timeout_s,
        trial_memory_bytes=settings.trial_memory_bytes,
    )


def check_name(catalog: ModelCatalog, name: str, version: str | None) -> None:
    if not NAME.match(name):
        raise RegistryError(
            f"model name {name!r}: 1-100 of a-z, 0-9, '_', '.', '-', starting with a letter "
            "or digit",
            422,
        )
    if version is not None and not VERSION.match(version):
        raise RegistryError(f"version {version!r}: 1-50 of letters, digits, '_', '.', '-'", 422)
    if name in catalog.shipped:
        raise RegistryError(
            f"{name!r} is the name of a model every tenant has; choose another", 409
        )


async def add_model(
    db: AsyncSession,
    catalog: ModelCatalog,
    *,
    tenant_id: uuid.UUID,
    name: str,
    data: bytes,
    version: str | None = None,
    description: str = "",
    max_batch_size: int | None = None,
    max_queue_delay_us: int | None = None,
    created_by: uuid.UUID | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelVersion:
    """Validate ``data``, store it and register it as the tenant's ``name``/``version``.

    :class:`ModelRejected` (4xx naming the rule) or :class:`RegistryError` when refused.
    """
    settings = catalog.settings.inference
    check_name(catalog, name, version)
    if max_batch_size is not None and max_batch_size < 0:
        raise RegistryError("max_batch_size cannot be negative", 422)
    if max_queue_delay_us is not None and not 0 <= max_queue_delay_us <= 1_000_000:
        raise RegistryError("max_queue_delay_us must be between 0 and 1000000", 422)
    if len(data) > settings.max_upload_bytes:  # before a thread or a subprocess is spent on it
        raise reject(
            "file-too-large", f"{len(data)} bytes, the limit is {settings.max_upload_bytes}"
        )
    if version is not None:  # refused before the costly validation; checked again below
        await _free_version(db, tenant_id, name, version)
    report = progress or (lambda _step: None)
    report("validating")
    validated: ValidatedModel = await asyncio.to_thread(validate_onnx, data, limits_from(settings))
    report("storing")
    await asyncio.to_thread(catalog.store.put, data)
    # Two registrations of one model at once (uploads, training runs, both) would read the
    # same versions and take the same next number: the lock makes them take turns, from here
    # to their commit, so the second reads what the first added.
    await lock_model_name(db, tenant_id, name)
    version = await _free_version(db, tenant_id, name, version)
    batch = settings.default_max_batch_size if max_batch_size is None else max_batch_size
    if max_queue_delay_us is None:
        max_queue_delay_us = settings.default_max_queue_delay_us
    row = ModelVersion(
        tenant_id=tenant_id,
        name=name,
        version=version,
        sha256=validated.sha256,
        size_bytes=validated.size,
        source="upload",
        description=description[:500],
        signature=msgspec.to_builtins(validated.signature),
        dynamic_batch=validated.dynamic_batch and batch > 1,
        max_batch_size=batch if validated.dynamic_batch else 0,
        max_queue_delay_us=max_queue_delay_us,
        created_by=created_by,
    )
    db.add(row)
    try:
        await db.flush()
    except IntegrityError:  # only without the lock's guarantee (a version added by hand)
        raise RegistryError(
            f"model {name!r} version {version!r} was added concurrently; retry", 409
        ) from None
    details = {"sha256": row.sha256, "size_bytes": row.size_bytes}
    await audit(
        db,
        "model.uploaded",
        tenant_id=tenant_id,
        target=("model", f"{name}/{version}"),
        details=details,
    )
    catalog.forget(tenant_id, name)
    return row


async def lock_model_name(db: AsyncSession, tenant_id: uuid.UUID, name: str) -> None:
    """Hold the tenant's model ``name`` against other registrations until the transaction
    ends: a transaction-level advisory lock on PostgreSQL (it touches no row, so it cannot
    deadlock against the foreign-key locks of the rows the transaction writes), the database's
    write lock on SQLite (which serialises every writer anyway)."""
    connection = await db.connection()
    if connection.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"model:{tenant_id}:{name}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        await connection.execute(select(func.pg_advisory_xact_lock(key)))
    else:
        await lock_row(db, Tenant, tenant_id)


async def _free_version(
    db: AsyncSession, tenant_id: uuid.UUID, name: str, version: str | None
) -> str:
    """``version`` if the model lacks it (409 otherwise), or the next whole number."""
    versions = model_rows(tenant_id, name).with_only_columns(ModelVersion.version)
    existing = list(await db.scalars(versions))
    if version is None:
        return str(max((int(v) for v in existing if v.isdigit()), default=0) + 1)
    if version in existing:
        raise RegistryError(
            f"model {name!r} already has version {version!r} (versions are immutable)", 409
        )
    return version


async def list_models(
    db: AsyncSession, catalog: ModelCatalog, tenant_id: uuid.UUID
) -> list[ModelOut]:
    """Every model the tenant can call: the shipped ones, then its own."""
    shipped = [
        msgspec.convert(ref, ModelOut, from_attributes=True)
        for name in sorted(catalog.shipped)
        for ref in catalog.shipped_refs(name)  # oldest version first
    ]
    rows = await db.scalars(
        select(ModelVersion).where(ModelVersion.tenant_id == tenant_id).order_by(ModelVersion.name)
    )
    own = sorted(rows, key=lambda r: (r.name, version_key(r.version)))
    return shipped + [model_out(r) for r in own]


async def model_versions(
    db: AsyncSession, catalog: ModelCatalog, tenant_id: uuid.UUID, name: str
) -> list[ModelOut]:
    """The versions of one model the tenant can call, oldest first; 404 if none."""
    if name in catalog.shipped:
        return [m for m in await list_models(db, catalog, tenant_id) if m.name == name]
    found = sorted(
        await db.scalars(model_rows(tenant_id, name)), key=lambda r: version_key(r.version)
    )
    if not found:
        raise RegistryError(f"unknown model {name!r}", 404)
    return [model_out(r) for r in found]


def model_out(row: ModelVersion) -> ModelOut:
    return ModelOut(
        name=row.name,
        version=row.version,
        source=row.source,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        description=row.description,
        max_batch_size=row.max_batch_size,
        max_queue_delay_us=row.max_queue_delay_us,
        signature=row.signature,
        created_at=row.created_at.isoformat() if row.created_at else None,
    )


async def delete_model(
    db: AsyncSession,
    catalog: ModelCatalog,
    tenant_id: uuid.UUID,
    name: str,
    version: str | None,
) -> int:
    """Remove a version (or every version) of the tenant's model; the count removed.

    The stored file stays (another tenant or version may share its hash; files are small next
    to what a re-upload would cost, and a sweep can collect unreferenced ones).
    """
    query = model_rows(tenant_id, name)
    if version is not None:
        query = query.where(ModelVersion.version == version)
    rows = list(await db.scalars(query))
    if not rows:
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        raise RegistryError(f"no {what}", 404)
    for row in rows:
        await db.delete(row)
    await db.flush()
    for row in rows:
        target = ("model", f"{name}/{row.version}")
        await audit(
            db, "model.deleted", tenant_id=tenant_id, target=target, details={"sha256": row.sha256}
        )
    catalog.forget(tenant_id, name)
    return len(rows)
