"""``/api/models/{name}/aliases``: a tenant model's named pointers, traffic splits, rollback.

Setting, deleting and rolling back need ``models.manage`` (as uploads and deletes do); reading
needs ``models.read``. Another tenant's model, or alias, answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import Principal, requires
from backplane.inference.aliases import (
    AliasChangeOut,
    AliasOut,
    alias_history,
    alias_out,
    delete_alias,
    get_alias,
    rollback_alias,
    set_alias,
)
from backplane.inference.registry import RegistryError
from backplane.inference.rollout import AliasTarget
from backplane.state import rails_of
from backplane.web import refuse_nul_in_fields

Req = Request[Principal, Any, Any]
Version = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class AliasIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT`` body: ``{"version": "1"}``, or a split ``{"version": "1", "split_version": "2",
    "split_percent": 10}`` (10 % of requests to version 2, sticky per routing key)."""

    version: Version
    split_version: Version | None = None
    split_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0


def _registry_error(_: Request[Any, Any, Any], exc: RegistryError) -> Response[Any]:
    return Response(
        {"status_code": exc.status_code, "detail": str(exc)}, status_code=exc.status_code
    )


class AliasController(Controller):
    path = "/models/{name:str}/aliases"
    tags = ["models"]
    exception_handlers = {RegistryError: _registry_error}

    @put(
        "/{alias:str}",
        guards=[requires("models.manage")],
        summary="Point an alias at a version, or split its traffic between two",
        description=(
            "Other server processes follow within `inference.registry_cache_s` seconds; "
            "every change is kept in the alias history and the audit trail."
        ),
    )
    async def put_alias(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        alias: FromPath[str],
        data: JSONBody[AliasIn],
    ) -> AliasOut:
        refuse_nul_in_fields(version=data.version, split_version=data.split_version)
        target = AliasTarget(
            version=data.version, split_version=data.split_version, split_percent=data.split_percent
        )
        row = await set_alias(
            db, rails_of(request).models, request.user.tenant_id, name, alias, target
        )
        return alias_out(row)

    @get("/{alias:str}", guards=[requires("models.read")], summary="Where an alias points")
    async def show_alias(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        alias: FromPath[str],
    ) -> AliasOut:
        return alias_out(await get_alias(db, request.user.tenant_id, name, alias))

    @get(
        "/{alias:str}/history",
        guards=[requires("models.read")],
        summary="An alias's changes, newest first: who, when, from and to",
    )
    async def history(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        alias: FromPath[str],
    ) -> list[AliasChangeOut]:
        tenant = request.user.tenant_id
        await get_alias(db, tenant, name, alias)  # a deleted alias's history: its model's owner
        return await alias_history(db, tenant, name, alias)

    @delete(
        "/{alias:str}",
        guards=[requires("models.manage")],
        summary="Remove an alias",
        status_code=204,
    )
    async def remove_alias(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        alias: FromPath[str],
    ) -> None:
        await delete_alias(db, rails_of(request).models, request.user.tenant_id, name, alias)

    @post(
        "/{alias:str}/rollback",
        guards=[requires("models.manage")],
        summary="Move an alias back to its previous target, in one step",
        status_code=200,
    )
    async def rollback(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        alias: FromPath[str],
    ) -> AliasOut:
        row = await rollback_alias(
            db, rails_of(request).models, request.user.tenant_id, name, alias
        )
        return alias_out(row)
