"""Seeding demo data once per database through the ``seed_demo_data`` hook."""

from __future__ import annotations

from datetime import UTC, datetime

from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.models import KernelState
from backplane.plugins import PluginSet

DEMO_MARKER = "demo_seeded_at"


async def seed_demo_data(plugins: PluginSet) -> bool:
    """Call ``seed_demo_data`` on every plugin in one transaction; False if already seeded."""
    engine = create_engine(plugins.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            async with session.begin():
                if await session.get(KernelState, DEMO_MARKER) is not None:
                    return False
                await plugins.acall("seed_demo_data", session=session)
                session.add(KernelState(key=DEMO_MARKER, value=datetime.now(UTC).isoformat()))
            return True
    finally:
        await engine.dispose()
