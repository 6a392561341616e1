"""Housekeeping of credential tables, run hourly by the kernel's own scheduled task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_

from backplane.identity.models import RefreshToken, RevokedAccessToken

REFRESH_KEEP_AFTER_END = timedelta(days=1)
"""Used or revoked refresh tokens are kept a day, so a late replay is still recognised as
reuse (and revokes its family) rather than answered as an unknown token."""


async def prune_expired_credentials(kernel: Any) -> None:
    """Delete denylist entries of expired access tokens and long-dead refresh tokens."""
    now = datetime.now(UTC)
    await kernel.db.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now))
    await kernel.db.execute(
        delete(RefreshToken).where(
            or_(
                RefreshToken.expires_at <= now,
                RefreshToken.revoked_at <= now - REFRESH_KEEP_AFTER_END,
            )
        )
    )
