"""The document resources (xAPI 1.0.3 Part Three 2.3-2.7): ``/xapi/activities/state``,
``/xapi/activities/profile`` and ``/xapi/agents/profile``.

A write reads the document's row ``FOR UPDATE`` and checks ``If-Match``/``If-None-Match``
against it in the same transaction, so two concurrent writers with the same ETag cannot both
win: the second waits, sees the new ETag and gets 412. A first insert that races another takes
the other's row and is checked against it the same way.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from sqlalchemy import delete as sql_delete
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel
from backplane_education.xapi import alternate, documents
from backplane_education.xapi.http import (
    answer,
    check_scope,
    check_version,
    read_body,
    xapi_settings,
)
from backplane_education.xapi.models import XapiDocument
from backplane_education.xapi.query import parse_agent, parse_time
from backplane_education.xapi.store import _insert
from backplane_education.xapi.validation import XapiError, bad, check_iri, is_uuid


class Resource(msgspec.Struct, frozen=True):
    """What identifies documents of one resource: its kind, required and id parameters."""

    kind: str
    needs_activity: bool
    needs_agent: bool
    id_param: str
    registration: bool
    require_precondition: bool
    """Activity and Agent Profile ``PUT`` over an existing document needs If-Match/None-Match."""


STATE = Resource("state", True, True, "stateId", True, False)
ACTIVITY_PROFILE = Resource("activity_profile", True, False, "profileId", False, True)
AGENT_PROFILE = Resource("agent_profile", False, True, "profileId", False, True)


class Target(msgspec.Struct, frozen=True):
    activity: str
    agent: str
    registration: str
    document_id: str | None
    since: datetime | None

    def scope(self, kind: str) -> str:
        joined = "\0".join((kind, self.activity, self.agent, self.registration))
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()

    def key(self, kind: str) -> str:
        joined = self.scope(kind) + "\0" + (self.document_id or "")
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _target(request: Request[Any, Any, Any], resource: Resource, *, need_id: bool) -> Target:
    params = dict(request.query_params)
    allowed = {resource.id_param, "since"}
    allowed |= {"activityId"} if resource.needs_activity else set()
    allowed |= {"agent"} if resource.needs_agent else set()
    allowed |= {"registration"} if resource.registration else set()
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise bad(f"unknown parameters: {', '.join(unknown)}")
    activity = agent = registration = ""
    if resource.needs_activity:
        if "activityId" not in params:
            raise bad("activityId is required")
        check_iri(params["activityId"], "activityId")
        activity = params["activityId"]
    if resource.needs_agent:
        if "agent" not in params:
            raise bad("agent is required")
        agent = parse_agent(params["agent"])
    if "registration" in params:
        if not is_uuid(params["registration"]):
            raise bad("registration must be a UUID")
        registration = params["registration"].lower()
    document_id = params.get(resource.id_param)
    if need_id and document_id is None:
        raise bad(f"{resource.id_param} is required")
    if document_id is not None and "since" in params:
        raise bad(f"since lists documents: it cannot be combined with {resource.id_param}")
    since = parse_time(params["since"], "since") if "since" in params else None
    return Target(activity, agent, registration, document_id, since)


async def _locked(db: AsyncSession, tenant_id: Any, kind: str, target: Target) -> Any:
    return await db.scalar(
        select(XapiDocument)
        .where(XapiDocument.tenant_id == tenant_id, XapiDocument.key == target.key(kind))
        .with_for_update()
    )


async def _current(db: AsyncSession, tenant_id: Any, kind: str, target: Target) -> Any:
    """The document's row as it is now (plain columns: no stale identity-map copy when a
    writer looks again), locked on PostgreSQL until the transaction ends."""
    found = await db.execute(
        select(XapiDocument.id, XapiDocument.etag, XapiDocument.content, XapiDocument.content_type)
        .where(XapiDocument.tenant_id == tenant_id, XapiDocument.key == target.key(kind))
        .with_for_update()
    )
    return found.first()


async def write(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    plugin_settings: Any,
    resource: Resource,
    *,
    merge: bool,
) -> Response[Any]:
    """PUT (replace) or POST (merge JSON) one document, under its concurrency headers."""
    check_version(request)
    principal = check_scope(request, "write")
    target = _target(request, resource, need_id=True)
    body = await read_body(request, xapi_settings(plugin_settings).max_document_bytes)
    content_type = request.headers.get("content-type") or "application/octet-stream"
    for _ in range(3):
        row = await _current(db, principal.tenant_id, resource.kind, target)
        documents.check_preconditions(
            if_match=request.headers.get("if-match"),
            if_none_match=request.headers.get("if-none-match"),
            current_etag=row.etag if row is not None else None,
            require_for_existing=resource.require_precondition and not merge,
        )
        content, stored_type = body, content_type
        if merge:
            stored = (row.content, row.content_type) if row is not None else (None, None)
            content = documents.merged(stored[0], stored[1], body, content_type)
            stored_type = "application/json"
        values = {
            "content": content,
            "content_type": stored_type,
            "etag": documents.etag_of(content),
            "updated": datetime.now(UTC),
        }
        if row is not None:
            # Compare-and-swap on the ETag read: a writer that lost the race changes nothing
            # and looks again (and then fails its precondition, as it should).
            swapped: Any = await db.execute(
                update(XapiDocument)
                .where(XapiDocument.id == row.id, XapiDocument.etag == row.etag)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if swapped.rowcount == 1:
                return answer(status=204)
            continue
        inserted = await db.execute(
            _insert(db, XapiDocument)
            .values(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                kind=resource.kind,
                scope=target.scope(resource.kind),
                key=target.key(resource.kind),
                document_id=target.document_id,
                activity_id=target.activity,
                agent=target.agent,
                registration=target.registration,
                **values,
            )
            .on_conflict_do_nothing()
            .returning(XapiDocument.id)
        )
        if inserted.first() is not None:
            return answer(status=204)
    raise XapiError(409, "the document changed while it was being written; try again")


async def read(
    request: Request[Any, Any, Any], db: AsyncSession, resource: Resource
) -> Response[Any]:
    """One document (its bytes, ETag, type) or, without an id, the ids of the scope's."""
    check_version(request)
    principal = check_scope(request, "read")
    target = _target(request, resource, need_id=False)
    if target.document_id is None:
        listing = select(XapiDocument.document_id).where(
            XapiDocument.tenant_id == principal.tenant_id,
            XapiDocument.scope == target.scope(resource.kind),
        )
        if target.since is not None:
            listing = listing.where(XapiDocument.updated > target.since)
        ids = (await db.scalars(listing.order_by(XapiDocument.updated))).all()
        return answer(list(ids))
    row = await db.scalar(
        select(XapiDocument).where(
            XapiDocument.tenant_id == principal.tenant_id,
            XapiDocument.key == target.key(resource.kind),
        )
    )
    if row is None:
        raise XapiError(404, f"no document {target.document_id!r}")
    modified = row.updated.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return answer(
        row.content,
        media_type=row.content_type,
        headers={"ETag": row.etag, "Last-Modified": modified},
    )


async def remove(
    request: Request[Any, Any, Any], db: AsyncSession, resource: Resource
) -> Response[Any]:
    """Delete one document (under ``If-Match``) or, for State without an id, all of a scope."""
    check_version(request)
    principal = check_scope(request, "write")
    target = _target(request, resource, need_id=resource is not STATE)
    if target.document_id is None:
        await db.execute(
            sql_delete(XapiDocument)
            .where(XapiDocument.tenant_id == principal.tenant_id)
            .where(XapiDocument.scope == target.scope(resource.kind))
            .execution_options(synchronize_session=False)
        )
        return answer(status=204)
    row = await _locked(db, principal.tenant_id, resource.kind, target)
    documents.check_preconditions(
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
        current_etag=row.etag if row is not None else None,
        require_for_existing=False,
    )
    if row is not None:
        await db.delete(row)
    return answer(status=204)


def _handlers(path: str, resource: Resource) -> list[Any]:
    name = resource.kind

    @put(path, status_code=200, name=f"xapi_{name}_put")
    async def put_document(
        request: Request[Any, Any, Any], kernel: NamedDependency[Kernel]
    ) -> Response[Any]:
        return await write(request, kernel.db, kernel.plugin_settings, resource, merge=False)

    @post(path, status_code=200, name=f"xapi_{name}_post")
    async def post_document(
        request: Request[Any, Any, Any], kernel: NamedDependency[Kernel]
    ) -> Response[Any]:
        if alternate.is_alternate(request.scope):
            limit = xapi_settings(kernel.plugin_settings).max_body_bytes
            return await alternate.dispatch(request, limit)
        return await write(request, kernel.db, kernel.plugin_settings, resource, merge=True)

    @get(path, name=f"xapi_{name}_get")
    async def get_document(
        request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
    ) -> Response[Any]:
        return await read(request, db, resource)

    @delete(path, status_code=200, name=f"xapi_{name}_delete")
    async def delete_document(
        request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
    ) -> Response[Any]:
        return await remove(request, db, resource)

    return [put_document, post_document, get_document, delete_document]


HANDLERS = [
    *_handlers("/activities/state", STATE),
    *_handlers("/activities/profile", ACTIVITY_PROFILE),
    *_handlers("/agents/profile", AGENT_PROFILE),
]
