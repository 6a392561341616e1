"""Publishers' statements: closing a billing period sums, per publisher and currency, what its
listings' consumers were charged (the :class:`Charge` rows written with their invoices, so the
figures are the invoice lines'), takes the platform's share (``platform_share_percent``,
rounded half-up to a whole minor unit) and leaves the net, all integers. Per listing the
statement keeps only aggregates (requests, rows, the number of consumers, gross), never who.

Each statement goes to the payout provider (setting ``payout_provider``); the default,
``ledger``, writes one :class:`PayoutEntry` of the net owed, for the deployment's own books.
Another provider (a payments service) is registered with :func:`register_payout_provider` and
runs inside the closing transaction: raising there closes nothing. Closing twice is
idempotent: a statement made for a publisher, period and currency is kept as it is.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketplace.models import Listing
from backplane_marketplace.money_models import Charge, PayoutEntry, Statement


class PayoutProvider(Protocol):
    async def statement_closed(self, session: AsyncSession, statement: Statement) -> str | None:
        """Pay (or book) ``statement.net`` to its publisher; a reference or None."""


class LedgerPayouts:
    """The default: a ledger row per statement; paying is left to the deployment."""

    async def statement_closed(self, session: AsyncSession, statement: Statement) -> str | None:
        entry = PayoutEntry(
            statement_id=statement.id,
            publisher_id=statement.publisher_id,
            amount=statement.net,
            currency=statement.currency,
        )
        session.add(entry)
        await session.flush()
        return str(entry.id)


PAYOUT_PROVIDERS: dict[str, PayoutProvider] = {"ledger": LedgerPayouts()}


def register_payout_provider(name: str, provider: PayoutProvider) -> None:
    """Make ``provider`` selectable with ``payout_provider = name`` (call at import time)."""
    PAYOUT_PROVIDERS[name] = provider


def platform_share(gross: int, percent: int) -> int:
    """``gross * percent / 100`` rounded half-up, in integers (never more than ``gross``)."""
    return (gross * percent + 50) // 100


async def close_statements(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    percent: int,
    provider_name: str,
) -> list[Statement]:
    """The statements of the period starting ``start`` (made now or before), by publisher.

    ``session`` sees every tenant's charges (an operator command's ``all_tenants`` view)."""
    provider = PAYOUT_PROVIDERS.get(provider_name)
    if provider is None:
        known = ", ".join(sorted(PAYOUT_PROVIDERS))
        raise LookupError(f"payout_provider: no provider {provider_name!r} (known: {known})")
    rows = await session.execute(
        select(
            Charge.publisher_id,
            Charge.currency,
            Charge.listing_id,
            Listing.slug,
            func.sum(Charge.requests),
            func.sum(Charge.rows),
            func.count(func.distinct(Charge.tenant_id)),
            func.sum(Charge.amount),
        )
        .join(Listing, Listing.id == Charge.listing_id)
        .where(Charge.period_start == start)
        .group_by(Charge.publisher_id, Charge.currency, Charge.listing_id, Listing.slug)
        .order_by(Listing.slug)
    )
    grouped: dict[tuple[uuid.UUID, str], list[dict[str, Any]]] = defaultdict(list)
    for publisher_id, currency, listing_id, slug, requests, count, consumers, gross in rows:
        grouped[(publisher_id, currency)].append(
            {
                "listing_id": str(listing_id),
                "slug": slug,
                "requests": int(requests),
                "rows": int(count),
                "consumers": int(consumers),
                "gross": int(gross),
            }
        )
    made = []
    for (publisher_id, currency), listings in sorted(grouped.items(), key=lambda g: str(g[0])):
        existing = await session.scalar(
            select(Statement).where(
                Statement.publisher_id == publisher_id,
                Statement.period_start == start,
                Statement.currency == currency,
            )
        )
        if existing is not None:
            made.append(existing)
            continue
        gross = sum(item["gross"] for item in listings)
        share = platform_share(gross, percent)
        statement = Statement(
            publisher_id=publisher_id,
            period_start=start,
            period_end=end,
            currency=currency,
            gross=gross,
            platform_share_percent=percent,
            platform_share=share,
            net=gross - share,
            listings=listings,
            payout_provider=provider_name,
        )
        session.add(statement)
        await session.flush()
        statement.payout_reference = await provider.statement_closed(session, statement)
        await session.flush()
        made.append(statement)
    return made
