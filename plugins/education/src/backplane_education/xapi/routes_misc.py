"""``/xapi/about`` (public), ``/xapi/agents`` and ``/xapi/activities`` (xAPI 1.0.3 Part Three
2.6-2.8)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.xapi.http import SUPPORTED, answer, check_scope, check_version
from backplane_education.xapi.reader import canonical_definitions
from backplane_education.xapi.validation import IFI_KEYS, bad, check_agent, check_iri


@get("/about")
async def about() -> Response[Any]:
    """The xAPI versions this LRS speaks; public (no credentials), as the specification asks."""
    return answer({"version": SUPPORTED, "extensions": {}})


def _only(request: Request[Any, Any, Any], name: str) -> str:
    params = dict(request.query_params)
    unknown = sorted(set(params) - {name})
    if unknown:
        raise bad(f"unknown parameters: {', '.join(unknown)}")
    if name not in params:
        raise bad(f"{name} is required")
    return str(params[name])


@get("/agents")
async def person(request: Request[Any, Any, Any]) -> Response[Any]:
    """The Person object of an agent: each identifier and name it is known by, as lists."""
    check_version(request)
    check_scope(request, "read")
    raw = _only(request, "agent")
    try:
        agent = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise bad("agent must be a JSON Agent") from None
    check_agent(agent, "agent", groups=False)
    found: dict[str, Any] = {"objectType": "Person"}
    for key in ("name", *IFI_KEYS):
        if key in agent:
            found[key] = [agent[key]]
    return answer(found)


@get("/activities")
async def activity(
    request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
) -> Response[Any]:
    """The activity with the LRS's canonical definition (the latest a statement carried)."""
    check_version(request)
    principal = check_scope(request, "read")
    activity_id = _only(request, "activityId")
    check_iri(activity_id, "activityId")
    definitions = await canonical_definitions(db, principal.tenant_id, {activity_id})
    found: dict[str, Any] = {"objectType": "Activity", "id": activity_id}
    if activity_id in definitions:
        found["definition"] = definitions[activity_id]
    return answer(found)


PUBLIC_HANDLERS = [about]
HANDLERS = [person, activity]
