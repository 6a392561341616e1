"""``HEAD`` on every LRS resource (xAPI 1.0.3 Part Three 1.1: answered as the ``GET`` would be,
without the body). Litestar serves ``HEAD`` only through handlers of its own, so each one runs
the ``GET`` handler's function and keeps its status and headers."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, head
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel
from backplane_education.xapi import routes_documents, routes_misc, routes_statements


def _bodiless(answer: Response[Any]) -> Response[None]:
    return Response(
        None,
        status_code=answer.status_code,
        headers=dict(answer.headers),
        media_type=answer.media_type,
    )


@head("/statements", name="xapi_statements_head")
async def head_statements(
    request: Request[Any, Any, Any],
    kernel: NamedDependency[Kernel],
) -> Response[None]:
    return _bodiless(await routes_statements.get_statements.fn(request, kernel))


def _document_head(path: str, resource: Any) -> Any:
    @head(path, name=f"xapi_{resource.kind}_head")
    async def head_document(
        request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
    ) -> Response[None]:
        return _bodiless(await routes_documents.read(request, db, resource))

    return head_document


@head("/activities", name="xapi_activities_head")
async def head_activities(
    request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
) -> Response[None]:
    return _bodiless(await routes_misc.activity.fn(request, db))


@head("/agents", name="xapi_agents_head")
async def head_agents(request: Request[Any, Any, Any]) -> Response[None]:
    return _bodiless(await routes_misc.person.fn(request))


@head("/about", name="xapi_about_head")
async def head_about() -> Response[None]:
    return _bodiless(await routes_misc.about.fn())


HANDLERS = [
    head_statements,
    head_activities,
    head_agents,
    _document_head("/activities/state", routes_documents.STATE),
    _document_head("/activities/profile", routes_documents.ACTIVITY_PROFILE),
    _document_head("/agents/profile", routes_documents.AGENT_PROFILE),
]
PUBLIC_HANDLERS = [head_about]
