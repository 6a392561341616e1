"""Demo data, once per database: tenant ``demo`` with its owner, then each plugin's rows.

The kernel creates the demo tenant itself, then calls every plugin's ``seed_demo_data`` with a
kernel whose session acts as that tenant alone (the ORM scopes it; the bypass of the kernel's
own maintenance session is suspended meanwhile). The owner's password and API key are printed
once.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.models import KernelState
from backplane.kernel import Rails
from backplane.plugins import PluginSet
from backplane.secret_key import secret_key

DEMO_MARKER = "demo_seeded_at"
DEMO_OWNER = "owner@demo.example.org"
DEMO_TENANT = "demo"


async def _kernel_demo(session: AsyncSession, rails: Rails) -> dict[str, Any]:
    from backplane.identity.provision import provision_tenant

    password = secrets.token_urlsafe(12)
    made = await provision_tenant(
        session,
        rails.kernel(),
        server_secret=secret_key(rails.settings),
        slug=DEMO_TENANT,
        name="Demo",
        owner_email=DEMO_OWNER,
        password=password,
        key_name="demo",
    )
    return {
        "tenant": DEMO_TENANT,
        "tenant_id": str(made.tenant.id),
        "login": made.owner.email,
        "password": password,
        "api_key": made.api_key.key,
    }


async def seed_demo_data(plugins: PluginSet) -> list[tuple[str, Any]] | None:
    """Seed in one transaction; return what was reported, or None if already seeded."""
    rails = Rails.build(plugins.settings, plugins)
    try:
        async with rails.database.maintenance("seed the demo tenant") as session, session.begin():
            if await session.get(KernelState, DEMO_MARKER) is not None:
                return None
            kernel = await _kernel_demo(session, rails)
            reports: list[tuple[str, Any]] = [("core", kernel)]
            tenant_id = uuid.UUID(kernel["tenant_id"])
            seeded = await rails.kernel().notify(
                "seed_demo_data", session=session, tenant_id=tenant_id
            )
            reports.extend((name, result) for name, result in seeded if result)
            await session.flush()
            session.add(KernelState(key=DEMO_MARKER, value=datetime.now(UTC).isoformat()))
        return reports
    finally:
        await rails.close()
