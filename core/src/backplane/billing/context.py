"""What billing code outside a request needs: settings, meters and providers of the application.

Task actors and hook implementations receive a session, not the application, so ``create_app``
(and ``provision_tenant``) register the loaded plugins here by database URL, and
:func:`context_for` finds them through the session's engine. A process that built neither (a
``backplane worker``) loads plugins once from its environment, as its task runtime did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.plugins import PluginSet
from backplane.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BillingContext:
    settings: Settings
    meters: dict[str, Meter]
    providers: dict[str, Any]


_by_database: dict[str, BillingContext] = {}


def _key(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=False)


def configure(plugins: PluginSet) -> BillingContext:
    """Build (once per database) and register the billing context of ``plugins``."""
    from backplane.billing.meters import collect_meters
    from backplane.billing.providers import collect_providers

    key = _key(plugins.settings.resolved_database_url())
    found = _by_database.get(key)
    if found is not None and found.settings is plugins.settings:
        return found
    context = BillingContext(plugins.settings, collect_meters(plugins), collect_providers(plugins))
    _by_database[key] = context
    # Kernel work across tenants (maintenance sessions) connects with another URL.
    _by_database[_key(plugins.settings.resolved_maintenance_url())] = context
    return context


def context_for(session: AsyncSession) -> BillingContext:
    """The billing context of the application whose database ``session`` is connected to."""
    bind = session.bind
    found = _by_database.get(_key(bind.sync_engine.url)) if bind is not None else None
    if found is not None:
        return found
    from backplane.loading import load_plugins
    from backplane.settings import load_settings

    log.info("no application registered for this database; loading plugins from the environment")
    return configure(load_plugins(load_settings()))
