"""Recording a drift alert: the ``model.drift_detected`` event and audit row, once.

Called by :class:`backplane.inference.drift_monitor.DriftMonitor` off the request path, in a
transaction of its own for the version's tenant. The version row's ``drift_alerted_at`` is
claimed first by a conditional update, so processes that see the same drift at about the same
time raise one alert per ``inference.drift_cooldown_s`` between them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane.audit.actor import SYSTEM, Actor
from backplane.audit.record import record as audit
from backplane.db.tenancy import bind_tenant
from backplane.inference.models import ModelVersion

DRIFT_EVENT: Final = "model.drift_detected"
"""The event type and the audit action of a drift alert."""
MAX_REPORTED_FEATURES: Final = 20
"""Features an alert names (the highest PSI first); ``drifted_features`` counts them all."""


def alert_data(
    name: str, version: str, features: list[str], values: list[float], threshold: float, rows: int
) -> dict[str, Any]:
    """The event's ``data`` (and the audit row's details)."""
    drifted = sorted(
        ((v, n) for n, v in zip(features, values, strict=True) if v > threshold), reverse=True
    )
    return {
        "model": name,
        "version": version,
        "threshold": threshold,
        "window_rows": rows,
        "drifted_features": len(drifted),
        "psi": {n: round(v, 6) for v, n in drifted[:MAX_REPORTED_FEATURES]},
    }


async def record_alert(
    sessionmaker: async_sessionmaker[AsyncSession],
    events: Any,
    key: tuple[uuid.UUID, str, str],
    sha256: str,
    data: dict[str, Any],
    cooldown_s: float,
) -> datetime | None:
    """Emit the event and write the audit row (as the system); the alert's time, or None when
    a process alerted for this version within ``cooldown_s`` (or the version is gone)."""
    tenant, name, version = key
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        async with session.begin():
            claimed = await session.execute(
                update(ModelVersion)
                .where(
                    ModelVersion.tenant_id == tenant,
                    ModelVersion.name == name,
                    ModelVersion.version == version,
                    ModelVersion.sha256 == sha256,
                    or_(
                        ModelVersion.drift_alerted_at.is_(None),
                        ModelVersion.drift_alerted_at <= now - timedelta(seconds=cooldown_s),
                    ),
                )
                .values(drift_alerted_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            await events.emit(session, DRIFT_EVENT, data, tenant_id=tenant)
            await audit(
                session,
                DRIFT_EVENT,
                tenant_id=tenant,
                target=("model", f"{name}/{version}"),
                details=data,
                actor=Actor(kind=SYSTEM),
            )
    return now
