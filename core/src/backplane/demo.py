"""Demo data, once per database: tenant ``demo`` with its owner, then each plugin's rows.

The kernel creates the demo tenant itself (it needs the plugin set, to fire ``tenant_created``),
then calls every plugin's ``seed_demo_data`` with the session bound to that tenant: plugins never
receive a tenancy-bypassing session. The owner's password and API key are printed once.
"""

from __future__ import annotations

import inspect
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.engine import Database
from backplane.db.models import KernelState
from backplane.db.tenancy import BYPASS_KEY, bind_tenant
from backplane.plugins import PluginSet
from backplane.telemetry import hook_span

DEMO_MARKER = "demo_seeded_at"
DEMO_OWNER = "owner@demo.example.org"


async def _kernel_demo(session: AsyncSession, plugins: PluginSet) -> dict[str, Any]:
    from backplane.identity.provision import provision_tenant

    password = secrets.token_urlsafe(12)
    made = await provision_tenant(
        session,
        plugins,
        slug="demo",
        name="Demo",
        owner_email=DEMO_OWNER,
        password=password,
        key_name="demo",
    )
    return {
        "tenant": "demo",
        "tenant_id": str(made.tenant.id),
        "login": made.owner.email,
        "password": password,
        "api_key": made.api_key.key,
    }


async def seed_demo_data(plugins: PluginSet) -> list[tuple[str, Any]] | None:
    """Seed in one transaction; return what was reported, or None if already seeded."""
    database = Database(plugins.settings)
    try:
        async with database.maintenance("seed the demo tenant") as session, session.begin():
            if await session.get(KernelState, DEMO_MARKER) is not None:
                return None
            kernel = await _kernel_demo(session, plugins)
            reports: list[tuple[str, Any]] = [("core", kernel)]
            session.sync_session.info.pop(BYPASS_KEY, None)
            bind_tenant(session, uuid.UUID(kernel["tenant_id"]))
            for name, function in plugins.implementations("seed_demo_data"):
                with hook_span("seed_demo_data", name):
                    result = function(session=session, settings=plugins.settings)
                    if inspect.isawaitable(result):
                        result = await result
                if result:
                    reports.append((name, result))
            await session.flush()
            session.add(KernelState(key=DEMO_MARKER, value=datetime.now(UTC).isoformat()))
        return reports
    finally:
        await database.dispose()
