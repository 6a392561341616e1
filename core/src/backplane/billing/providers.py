"""Billing providers: who is told about finalized invoices (``register_billing_providers``).

The kernel registers its own ``ledger`` through the same hook: the invoice tables *are* the
ledger, so it only acknowledges (the reference is the invoice number). A payment provider
plugin registers ``register("stripe", provider)`` and is chosen with
``BACKPLANE_BILLING__PROVIDER=stripe``; its ``invoice_finalized`` runs inside the closing
transaction, so raising there leaves the invoice a draft and the close is retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import BillingProvider, Meter
from backplane.billing.schemas import InvoiceOut
from backplane.events import Events
from backplane.plugins import PluginSet, by_name
from backplane.settings import Settings


class Provider(Protocol):
    async def invoice_finalized(self, session: AsyncSession, invoice: InvoiceOut) -> str | None:
        """Take over a finalized invoice (charge, send, book); return a reference or None."""


class LedgerProvider:
    """The kernel's default: the invoice is its own ledger entry."""

    async def invoice_finalized(self, session: AsyncSession, invoice: InvoiceOut) -> str | None:
        return invoice.number


def _items(plugin: str, name: Any = None, provider: Any = None) -> list[BillingProvider]:
    if isinstance(name, BillingProvider):
        return [name]
    if not isinstance(name, str) or provider is None:
        raise TypeError(f"plugin {plugin!r}: register_billing_providers expects (name, provider)")
    return [BillingProvider(name=name, provider=provider)]


def collect_providers(plugins: PluginSet) -> dict[str, Any]:
    found = by_name(
        plugins.collect("register_billing_providers", _items), lambda p: p.name, "billing provider"
    )
    return {name: item.provider for name, item in found.items()}


def active_provider(providers: dict[str, Any], name: str) -> Provider:
    provider = providers.get(name)
    if provider is None:
        known = ", ".join(sorted(providers)) or "none"
        raise LookupError(
            f"BACKPLANE_BILLING__PROVIDER: no provider {name!r} (registered: {known})"
        )
    return provider  # type: ignore[no-any-return]


@dataclass(frozen=True)
class BillingContext:
    """What closing a period needs beyond the session: the process's settings, meters,
    providers and events (``Rails.billing``, reached by kernel code through its kernel)."""

    settings: Settings
    meters: dict[str, Meter]
    providers: dict[str, Any]
    events: Events
    notify: Callable[..., Awaitable[list[tuple[str, Any]]]] | None = None
    """Calls a lifecycle hook of every plugin (``Kernel.notify``): ``invoice_closing``."""

    def __post_init__(self) -> None:
        active_provider(self.providers, self.settings.billing.provider)  # a typo fails at start
