"""Start identity services lazily, so a database that is down at boot does not stop the app:
start-up tries once, public routes (health) are served anyway, and authentication retries on
use, answering 503 until the database is reachable and migrated.
"""

from __future__ import annotations

import asyncio
import logging

from litestar.exceptions import HTTPException

from backplane.db.engine import Database, DatabaseRoleError
from backplane.identity.runtime import Identity
from backplane.settings import Settings

log = logging.getLogger(__name__)


class IdentityHolder:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        role_permissions: dict[str, frozenset[str]],
        platform_permissions: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.database = database
        self.role_permissions = role_permissions
        self.platform_permissions = platform_permissions
        self.identity: Identity | None = None
        self._lock = asyncio.Lock()

    async def try_start(self) -> None:
        try:
            await self.get()
        except HTTPException as exc:
            log.error("identity services not started yet: %s", exc.detail)

    async def get(self) -> Identity:
        if self.identity is not None:
            return self.identity
        async with self._lock:
            if self.identity is None:
                try:
                    self.identity = await Identity.start(
                        self.settings,
                        self.database,
                        self.role_permissions,
                        self.platform_permissions,
                    )
                except DatabaseRoleError as exc:
                    log.error("identity services cannot start: %s", exc)
                    raise HTTPException(status_code=503, detail=str(exc)) from exc
                except Exception as exc:
                    raise HTTPException(
                        status_code=503,
                        detail=f"identity services unavailable ({type(exc).__name__}); "
                        "is the database reachable and migrated (backplane db upgrade)?",
                    ) from exc
        return self.identity

    async def close(self) -> None:
        """Release the services; a later lifespan (the same app started again) builds anew."""
        identity, self.identity = self.identity, None
        if identity is not None:
            await identity.close()
