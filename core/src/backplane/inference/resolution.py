"""What a model name and a version-or-alias resolve to, for one request.

The catalog caches, per (tenant, model), a :class:`RegistryView` (the ready versions and the
aliases, read together) for ``inference.registry_cache_s``. **The bound on an alias change**:
the process that makes it forgets its view at once; every other process answers with the new
target at most ``inference.registry_cache_s`` (default 2 s) after the change commits, because a
cached view is never used longer than that after the read that produced it began (see
:mod:`backplane.caching`). A rollback is an alias change, so the same bound holds for it.

In a path, a version wins over an alias of the same name (the API refuses to create such an
alias, but a later upload may take the name). An unversioned request goes to ``production``
when the model has that alias, else to the latest version, as before aliases existed.
"""

from __future__ import annotations

import uuid
from typing import Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import ModelRef
from backplane.inference.alias_models import ModelAlias
from backplane.inference.rollout import AliasTarget, route

DEFAULT_ALIAS: Final = "production"


class RegistryView(msgspec.Struct, frozen=True):
    """A tenant model's ready versions (oldest first) and its aliases, as read together."""

    refs: list[ModelRef]
    aliases: dict[str, AliasTarget]


async def read_aliases(db: AsyncSession, tenant_id: uuid.UUID, name: str) -> dict[str, AliasTarget]:
    """Every alias of the tenant's model ``name``."""
    rows = await db.scalars(
        select(ModelAlias).where(ModelAlias.tenant_id == tenant_id, ModelAlias.name == name)
    )
    return {
        row.alias: AliasTarget(
            version=row.version, split_version=row.split_version, split_percent=row.split_percent
        )
        for row in rows
    }


def version_for(
    view: RegistryView,
    tenant_id: uuid.UUID,
    name: str,
    requested: str | None,
    routing_key: str | None,
    *,
    split: bool,
) -> str | None:
    """The version to serve (None: the latest). ``split`` False (metadata, readiness) always
    takes an alias's main version; True (inference) routes by the key or at random. A routed
    version that is gone falls back to the alias's main one; an alias whose main version is
    gone is unknown when named, and ignored when it is only the default."""
    versions = {ref.version for ref in view.refs}
    if requested is not None and requested in versions:
        return requested
    alias = DEFAULT_ALIAS if requested is None else requested
    target = view.aliases.get(alias)
    if target is None or target.version not in versions:
        return requested  # unknown -> pick_version's 404; None -> the latest, as before
    if not split:
        return target.version
    chosen = route(target, tenant_id=tenant_id, name=name, alias=alias, routing_key=routing_key)
    return chosen if chosen in versions else target.version
