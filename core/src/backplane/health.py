"""Liveness and readiness endpoints (public by design: load balancers call them)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import inspect as inspect_database
from sqlalchemy import text

from backplane.db.engine import Database, ping
from backplane.kernel import Rails
from backplane.plugins import PluginSet
from backplane.state import rails_of
from backplane.tasks.broker import broker_kind, broker_problem
from backplane.telemetry import hook_span


class ComponentHealth(msgspec.Struct):
    status: str
    detail: str | None = None


class PluginHealth(msgspec.Struct):
    name: str
    status: str
    version: str | None
    reason: str | None = None


class Readiness(msgspec.Struct):
    status: str
    version: str
    database: ComponentHealth
    broker: ComponentHealth
    plugins: list[PluginHealth]


async def _plugin_reports(rails: Rails, timeout_s: float) -> dict[str, str]:
    """Problems reported by plugins' ``check_health`` hooks, each bounded by ``timeout_s``."""
    problems: dict[str, str] = {}
    kernel = rails.kernel()
    for name, function in rails.plugins.implementations("check_health"):
        try:
            async with asyncio.timeout(timeout_s):
                with hook_span("check_health", name):
                    result = function(kernel=kernel.for_plugin(name))
                    if inspect.isawaitable(result):
                        result = await result
        except TimeoutError:
            result = f"health check gave no answer within {timeout_s} s"
        except Exception as exc:  # noqa: BLE001 - a failing check is a report, not a crash
            result = f"health check raised {type(exc).__name__}: {exc}"
        if result:
            problems[name] = str(result)
    return problems


@functools.lru_cache(maxsize=4)
def _migration_heads(plugins: PluginSet) -> tuple[frozenset[str], dict[str, str]]:
    """The head revisions of the enabled plugins' branches, and the branch label(s) of every
    revision (alembic passes a branch's labels down to its descendants): read once per plugin
    set, as loading the scripts takes half a second."""
    from alembic.script import ScriptDirectory

    from backplane.db.migrations import alembic_config

    script = ScriptDirectory.from_config(alembic_config(plugins))
    branches = {
        revision.revision: ", ".join(sorted(revision.branch_labels)) or revision.revision
        for revision in script.walk_revisions()
    }
    heads = frozenset(script.get_heads())
    return heads, branches


async def migration_problem(database: Database, plugins: PluginSet) -> str | None:
    """None if the database holds every migration of the enabled plugins, else what to do.

    Revisions the database holds that these plugins do not know (a newer release migrated it)
    are not a problem here: only missing ones are."""
    heads, branches = await asyncio.to_thread(_migration_heads, plugins)
    async with database.maintenance_engine.connect() as connection:
        current: set[str] = set()
        if await connection.run_sync(
            lambda sync: inspect_database(sync).has_table("alembic_version")
        ):
            versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
            current = set(versions.scalars())
    if not current:
        return "the database is not migrated: run `backplane db upgrade`"
    missing = heads - current
    if not missing or current - set(branches):
        return None
    named = ", ".join(sorted({branches.get(head, head) for head in missing}))
    return f"the database lacks migrations of {named}: run `backplane db upgrade`"


async def _migrations_checked(rails: Rails, timeout_s: float) -> str | None:
    """:func:`migration_problem` for readiness: an answer in time, or the reason there is none."""
    try:
        async with asyncio.timeout(timeout_s):
            return await migration_problem(rails.database, rails.plugins)
    except TimeoutError:
        return f"migration state unknown: no answer within {timeout_s} s"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health check
        return f"migration state unknown: {type(exc).__name__}: {exc}"


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    include_in_schema = True

    opt = {"public": True}

    @get("/live", summary="The process is up")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/ready",
        summary="Database reachable and migrated; status of every plugin",
        description="200 when the database answers and holds every migration of the enabled "
        "plugins (status `degraded` if a plugin's own health check reports a problem); 503 "
        "when it does not.",
        status_code=HTTP_200_OK,
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        from backplane import __version__

        rails = rails_of(request)
        settings = rails.settings
        timeout = settings.db.health_timeout_s
        problem, broker_issue = await asyncio.gather(
            ping(rails.database.engine, timeout), broker_problem(settings, timeout)
        )
        if problem is None:
            problem = await _migrations_checked(rails, timeout)
        database = ComponentHealth(status="ok" if problem is None else "error", detail=problem)
        broker = ComponentHealth(
            status="ok" if broker_issue is None else "error",
            detail=broker_issue or broker_kind(settings),
        )
        reports = await _plugin_reports(rails, timeout)
        plugins = []
        for record in rails.plugins.records.values():
            status, reason = record.status.value, record.reason
            if record.name in reports:
                status, reason = "unhealthy", reports[record.name]
            plugins.append(
                PluginHealth(name=record.name, status=status, version=record.version, reason=reason)
            )
        ok = problem is None and broker_issue is None
        overall = "error" if not ok else ("degraded" if reports else "ok")
        body = Readiness(
            status=overall, version=__version__, database=database, broker=broker, plugins=plugins
        )
        return Response(body, status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE)
