"""The kernel's hourly task prunes dead credentials and keeps what still matters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from backplane.db import migrations
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.identity.maintenance import prune_expired_credentials
from backplane.identity.models import RefreshToken, RevokedAccessToken, User
from backplane.loading import load_plugins
from backplane.tasks.runtime import collect_tasks
from tests.app_helpers import kernel_on
from tests.conftest import make_settings


def test_prune_is_a_scheduled_kernel_task(data_dir: Path) -> None:
    tasks = {t.name: t for t in collect_tasks(load_plugins(make_settings(data_dir)))}
    assert tasks["core.prune_expired_credentials"].schedule == "17 * * * *"


async def test_prune_expired_credentials(data_dir: Path) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": ""})
    plugins = load_plugins(settings)
    await asyncio.to_thread(migrations.upgrade, plugins)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    family = uuid.uuid4()
    async with sessions() as session:
        user = User(email="a@example.org", is_active=True)
        session.add(user)
        await session.flush()
        later = now + timedelta(days=9)

        def refresh(mark: str, **times: datetime) -> RefreshToken:
            return RefreshToken(token_hash=mark * 64, family_id=family, user_id=user.id, **times)

        session.add_all(
            [
                RevokedAccessToken(jti="gone", expires_at=now - timedelta(minutes=1)),
                RevokedAccessToken(jti="kept", expires_at=now + timedelta(minutes=5)),
                refresh("a", expires_at=now - timedelta(seconds=1)),
                refresh("b", expires_at=later, revoked_at=now - timedelta(days=2)),
                refresh("c", expires_at=later, revoked_at=now - timedelta(hours=1)),
                refresh("d", expires_at=later),
            ]
        )
        await session.commit()
    async with sessions() as session:
        async with kernel_on(plugins, session) as kernel:
            await prune_expired_credentials(kernel)
        await session.commit()
    async with sessions() as session:
        jtis = set(await session.scalars(select(RevokedAccessToken.jti)))
        hashes = set(await session.scalars(select(RefreshToken.token_hash)))
    await engine.dispose()
    assert jtis == {"kept"}
    assert hashes == {"c" * 64, "d" * 64}
