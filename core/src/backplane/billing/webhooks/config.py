"""Which settings an actor runs with.

Actors receive a :class:`~backplane.TaskContext` (a session), not the settings, so the kernel
registers each application's settings here by database URL (``create_app`` calls
:func:`configure`) and an actor finds them through its session's engine. A worker process that
built no application (``backplane worker``) reads its settings from the environment, exactly as
its task runtime did.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.settings import Settings, load_settings

log = logging.getLogger(__name__)
_by_database: dict[str, Settings] = {}


def _key(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=False)


def configure(settings: Settings) -> None:
    """Make ``settings`` the ones actors on this settings' database run with."""
    for url in (settings.resolved_database_url(), settings.resolved_maintenance_url()):
        _by_database[_key(url)] = settings


@functools.cache
def _from_environment() -> Settings:
    return load_settings()


def settings_for(session: AsyncSession) -> Settings:
    """The settings of the application whose database ``session`` is connected to."""
    bind = session.bind  # an AsyncEngine, or an AsyncConnection of one
    found = _by_database.get(_key(bind.sync_engine.url)) if bind is not None else None
    if found is None:
        log.debug("no application settings registered for this database; using the environment")
        return _from_environment()
    return found
