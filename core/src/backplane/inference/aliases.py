"""Setting, reading, rolling back and promoting a tenant model's aliases: API and CLI share it.

Every change locks the alias row (``SELECT ... FOR UPDATE``; a concurrent create loses the
unique constraint and retries as an update), appends a :class:`ModelAliasChange` with the state
before and after and the actor, and records ``model.alias_changed`` in the audit trail, all in
the caller's transaction. The changing process forgets its cached view at once; every other
process sees the change within ``inference.registry_cache_s`` (see :mod:`.resolution`).
"""

from __future__ import annotations

import re
import uuid

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.actor import current_actor
from backplane.audit.record import record as audit
from backplane.inference.alias_models import ModelAlias, ModelAliasChange
from backplane.inference.models import ModelVersion, model_rows
from backplane.inference.registry import RegistryError
from backplane.inference.rollout import AliasTarget
from backplane.inference.runtime import ModelCatalog

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,39}\Z")
PRODUCTION = "production"


class AliasOut(msgspec.Struct, kw_only=True):
    name: str
    alias: str
    version: str
    split_version: str | None = None
    split_percent: int = 0
    updated_by: str = ""
    updated_at: str | None = None


class AliasChangeOut(msgspec.Struct, kw_only=True):
    action: str
    version: str | None
    split_version: str | None
    split_percent: int
    previous_version: str | None
    previous_split_version: str | None
    previous_split_percent: int
    changed_by: str
    changed_at: str | None


def alias_out(row: ModelAlias) -> AliasOut:
    return AliasOut(
        name=row.name,
        alias=row.alias,
        version=row.version,
        split_version=row.split_version,
        split_percent=row.split_percent,
        updated_by=row.updated_by,
        updated_at=row.updated_at.isoformat() if row.updated_at else None,
    )


def _actor() -> str:
    actor = current_actor()
    return f"{actor.kind}:{actor.id}"[:250] if actor.id else actor.kind


def check_alias(alias: str) -> None:
    if not ALIAS.match(alias):
        raise RegistryError(
            f"alias {alias!r}: 1-40 of a-z, 0-9, '_', '-', starting with a letter", 422
        )


async def _locked(
    db: AsyncSession, tenant_id: uuid.UUID, name: str, alias: str
) -> ModelAlias | None:
    query = select(ModelAlias).where(
        ModelAlias.tenant_id == tenant_id, ModelAlias.name == name, ModelAlias.alias == alias
    )
    return (await db.scalars(query.with_for_update())).one_or_none()


async def _versions(db: AsyncSession, tenant_id: uuid.UUID, name: str) -> set[str]:
    query = model_rows(tenant_id, name).where(ModelVersion.status == "ready")
    found = set(await db.scalars(query.with_only_columns(ModelVersion.version)))
    if not found:
        raise RegistryError(f"unknown model {name!r}", 404)
    return found


def _check_target(name: str, alias: str, target: AliasTarget, versions: set[str]) -> None:
    if alias in versions:
        raise RegistryError(
            f"model {name!r} has a version named {alias!r}; choose another alias", 409
        )
    for version in (target.version, target.split_version):
        if version is not None and version not in versions:
            raise RegistryError(f"model {name!r} has no version {version!r}", 404)
    if target.split_version is None:
        if target.split_percent != 0:
            raise RegistryError("split_percent needs a split_version", 422)
        return
    if target.split_version == target.version:
        raise RegistryError("split_version must differ from version", 422)
    if not 1 <= target.split_percent <= 99:
        raise RegistryError("split_percent must be between 1 and 99", 422)


async def _change(
    db: AsyncSession,
    catalog: ModelCatalog,
    tenant_id: uuid.UUID,
    name: str,
    alias: str,
    target: AliasTarget | None,
    action: str,
) -> ModelAlias | None:
    """Move (or, with ``target`` None, delete) the alias, with its history and audit rows."""
    row = await _locked(db, tenant_id, name, alias)
    created = False
    if row is None and target is not None:
        limit = catalog.settings.inference.max_aliases_per_model
        count = await db.scalar(
            select(func.count()).where(ModelAlias.tenant_id == tenant_id, ModelAlias.name == name)
        )
        if (count or 0) >= limit:
            raise RegistryError(f"model {name!r} already has {limit} aliases (the limit)", 409)
        try:
            async with db.begin_nested():
                row = ModelAlias(
                    tenant_id=tenant_id, name=name, alias=alias, version=target.version
                )
                db.add(row)
                await db.flush()
            created = True
        except IntegrityError:  # created concurrently: take its lock and move it instead
            row = await _locked(db, tenant_id, name, alias)
            if row is None:
                raise RegistryError(f"alias {alias!r} changed concurrently; retry", 409) from None
    if row is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r}", 404)
    previous = None
    if not created:
        previous = AliasTarget(
            version=row.version, split_version=row.split_version, split_percent=row.split_percent
        )
    who = _actor()
    if target is None:
        await db.delete(row)
    else:
        row.version, row.split_version = target.version, target.split_version
        row.split_percent, row.updated_by, row.updated_at = target.split_percent, who, func.now()
    last = await db.scalar(
        select(func.max(ModelAliasChange.seq)).where(
            ModelAliasChange.tenant_id == tenant_id,
            ModelAliasChange.name == name,
            ModelAliasChange.alias == alias,
        )
    )
    db.add(
        ModelAliasChange(
            tenant_id=tenant_id,
            seq=(last or 0) + 1,
            name=name,
            alias=alias,
            action=action,
            version=target.version if target else None,
            split_version=target.split_version if target else None,
            split_percent=target.split_percent if target else 0,
            previous_version=previous.version if previous else None,
            previous_split_version=previous.split_version if previous else None,
            previous_split_percent=previous.split_percent if previous else 0,
            changed_by=who,
        )
    )
    await db.flush()
    details = {
        "action": action,
        "to": msgspec.to_builtins(target) if target else None,
        "from": msgspec.to_builtins(previous) if previous else None,
    }
    await audit(
        db,
        "model.alias_changed",
        tenant_id=tenant_id,
        target=("model", f"{name}@{alias}"),
        details=details,
    )
    catalog.forget(tenant_id, name)
    if target is not None:
        await db.refresh(row)
        return row
    return None


async def set_alias(
    db: AsyncSession,
    catalog: ModelCatalog,
    tenant_id: uuid.UUID,
    name: str,
    alias: str,
    target: AliasTarget,
    *,
    action: str = "set",
) -> ModelAlias:
    """Point ``alias`` of the tenant's model ``name`` at ``target`` (created if new)."""
    check_alias(alias)
    _check_target(name, alias, target, await _versions(db, tenant_id, name))
    row = await _change(db, catalog, tenant_id, name, alias, target, action)
    assert row is not None
    return row


async def get_alias(db: AsyncSession, tenant_id: uuid.UUID, name: str, alias: str) -> ModelAlias:
    check_alias(alias)
    row = (
        await db.scalars(
            select(ModelAlias).where(
                ModelAlias.tenant_id == tenant_id,
                ModelAlias.name == name,
                ModelAlias.alias == alias,
            )
        )
    ).one_or_none()
    if row is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r}", 404)
    return row


async def delete_alias(
    db: AsyncSession, catalog: ModelCatalog, tenant_id: uuid.UUID, name: str, alias: str
) -> None:
    check_alias(alias)
    await _change(db, catalog, tenant_id, name, alias, None, "delete")


async def alias_history(
    db: AsyncSession, tenant_id: uuid.UUID, name: str, alias: str, limit: int = 50
) -> list[AliasChangeOut]:
    """The alias's latest changes, newest first."""
    check_alias(alias)
    rows = await db.scalars(
        select(ModelAliasChange)
        .where(
            ModelAliasChange.tenant_id == tenant_id,
            ModelAliasChange.name == name,
            ModelAliasChange.alias == alias,
        )
        .order_by(ModelAliasChange.seq.desc())
        .limit(limit)
    )
    return [
        AliasChangeOut(
            action=r.action,
            version=r.version,
            split_version=r.split_version,
            split_percent=r.split_percent,
            previous_version=r.previous_version,
            previous_split_version=r.previous_split_version,
            previous_split_percent=r.previous_split_percent,
            changed_by=r.changed_by,
            changed_at=r.changed_at.isoformat() if r.changed_at else None,
        )
        for r in rows
    ]


async def rollback_alias(
    db: AsyncSession, catalog: ModelCatalog, tenant_id: uuid.UUID, name: str, alias: str
) -> ModelAlias:
    """Move the alias back to where it pointed before its latest change, in one step (a second
    rollback undoes the first). 409 when it has no previous target (it was just created)."""
    check_alias(alias)
    versions = await _versions(db, tenant_id, name)
    await _locked(db, tenant_id, name, alias)  # serialise with other changes of this alias
    last = (
        await db.scalars(
            select(ModelAliasChange)
            .where(
                ModelAliasChange.tenant_id == tenant_id,
                ModelAliasChange.name == name,
                ModelAliasChange.alias == alias,
            )
            .order_by(ModelAliasChange.seq.desc())
            .limit(1)
        )
    ).one_or_none()
    if last is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r}", 404)
    if last.previous_version is None:
        raise RegistryError(f"alias {alias!r} of {name!r} has no previous target", 409)
    target = AliasTarget(
        version=last.previous_version,
        split_version=last.previous_split_version,
        split_percent=last.previous_split_percent,
    )
    _check_target(name, alias, target, versions)
    row = await _change(db, catalog, tenant_id, name, alias, target, "rollback")
    assert row is not None
    return row
