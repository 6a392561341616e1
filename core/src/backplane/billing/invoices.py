"""Closing a billing period into an invoice: draft, one line per charge, finalized, handed over.

Lines, for every subscription segment of the period (a plan change makes two segments):

- the plan's fixed fee, **prorated by time**: ``fee x segment seconds / period seconds``;
- one line per charge of the segment's plan, priced on the usage **within the segment** alone
  (tiers start again in each segment), with the meter's own aggregation over that window;
- then the plugins' own items over the whole period (hook ``invoice_closing``, kind ``item``),
  priced by the plugin in whole minor units (the marketplace's model calls, say).

Each line is rounded half-up to a minor unit (see :mod:`backplane.billing.pricing`); the total
is the sum of the lines. ``(tenant, period_start)`` is unique, so closing twice — concurrently or
not — makes one invoice; a finalized invoice is never recomputed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.aggregate import window_usage
from backplane.billing.models import from_row
from backplane.billing.plan_models import DRAFT, FINALIZED, Invoice, InvoiceLine
from backplane.billing.plans import plan_charges
from backplane.billing.pricing import Priced, price, prorate, quantity_decimal
from backplane.billing.providers import BillingContext, active_provider
from backplane.billing.recording import insert_for
from backplane.billing.schemas import InvoiceItem, InvoiceLineOut, InvoiceOut
from backplane.billing.subscriptions import segments
from backplane.billing.usage import period_bounds

log = logging.getLogger(__name__)


async def draft_lines(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    context: BillingContext,
    start: datetime,
    end: datetime,
) -> tuple[str | None, list[InvoiceLine], str]:
    """The plan lines of ``[start, end)``, their currency (None: no subscription then) and the
    code of the period's last plan."""
    found = await segments(session, tenant_id, start, end)
    whole = (end - start).total_seconds()
    lines: list[InvoiceLine] = []
    for seg_start, seg_end, plan in found:
        span = f"{seg_start:%Y-%m-%d %H:%M} to {seg_end:%Y-%m-%d %H:%M} UTC"
        # (kind, meter, description, quantity, priced) of each of the segment's lines
        parts: list[tuple[str, str | None, str, str, Priced]] = []
        if plan.fee:
            fee = prorate(plan.fee, (seg_end - seg_start).total_seconds(), whole)
            share = fee.breakdown[0]["share"] if fee.breakdown else "0"
            parts.append(("fee", None, f"{plan.name} fee, {span}", share, fee))
        for charge in await plan_charges(session, plan.id):
            meter = context.meters.get(charge.meter)
            if meter is None:
                log.warning("plan %s charges unregistered meter %s", plan.code, charge.meter)
                continue
            usage = await window_usage(session, tenant_id, meter, seg_start, seg_end)
            quantity = quantity_decimal(usage.total.value(meter.aggregation))
            text = f"{meter.code} ({meter.unit}, {meter.aggregation}), {span}"
            parts.append(
                (
                    "usage",
                    meter.code,
                    text,
                    format(quantity.normalize(), "f"),
                    price(charge, quantity),
                )
            )
        lines += [
            InvoiceLine(
                tenant_id=tenant_id,
                plan_code=plan.code,
                segment_start=seg_start,
                segment_end=seg_end,
                kind=kind,
                meter=code,
                description=text,
                quantity=quantity,
                amount=priced.amount,
                details=priced.breakdown,
            )
            for kind, code, text, quantity, priced in parts
        ]
    if not found:
        return None, lines, ""
    last = found[-1][2]
    return last.currency, lines, last.code


async def plugin_lines(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    context: BillingContext,
    start: datetime,
    end: datetime,
    currency: str,
    plan: str,
) -> list[InvoiceLine]:
    """The plugins' own items (hook ``invoice_closing``), one line each over the period."""
    assert context.notify is not None
    answers = await context.notify(
        "invoice_closing",
        session=session,
        tenant_id=tenant_id,
        period_start=start,
        period_end=end,
        currency=currency,
    )
    lines = []
    for plugin, items in answers:
        for item in items or []:
            if not isinstance(item, InvoiceItem) or item.amount < 0:
                raise TypeError(
                    f"plugin {plugin!r}: invoice_closing returns InvoiceItem values with a "
                    f"non-negative amount, got {item!r}"
                )
            lines.append(
                InvoiceLine(
                    tenant_id=tenant_id,
                    plan_code=plan,
                    segment_start=start,
                    segment_end=end,
                    kind="item",
                    meter=item.meter,
                    description=item.description[:300],
                    quantity=item.quantity,
                    amount=item.amount,
                    details=item.details,
                )
            )
    return lines


async def close_tenant_period(
    session: AsyncSession, tenant_id: uuid.UUID, period_start: datetime, context: BillingContext
) -> Invoice | None:
    """Invoice ``tenant_id`` for the period starting ``period_start``; idempotent.

    None when the tenant had no subscription during the period.
    """
    start, end = period_bounds(period_start)
    existing = await _invoice_for(session, tenant_id, start)
    if existing is not None and existing.status == FINALIZED:
        return existing
    currency, lines, plan = await draft_lines(session, tenant_id, context, start, end)
    if currency is None:
        return None
    if existing is None:
        claimed = await session.execute(
            insert_for(session)(Invoice)
            .values(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                number=f"INV-{start:%Y%m}-{tenant_id.hex[:8].upper()}",
                period_start=start,
                period_end=end,
                currency=currency,
                status=DRAFT,
                total=0,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "period_start"])
            .returning(Invoice.id)
        )
        if claimed.first() is None:  # another closer got here first (and has committed)
            return await _invoice_for(session, tenant_id, start)
        existing = await _invoice_for(session, tenant_id, start)
        assert existing is not None
    if context.notify is not None:
        # Only the closer that holds the invoice asks the plugins (they may write rows).
        lines += await plugin_lines(session, tenant_id, context, start, end, currency, plan)
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == existing.id))
    for position, line in enumerate(lines, start=1):
        line.invoice_id, line.position = existing.id, position
    session.add_all(lines)
    existing.currency = currency
    existing.total = sum((line.amount for line in lines), 0)
    existing.status, existing.finalized_at = FINALIZED, datetime.now(UTC)
    existing.provider = name = context.settings.billing.provider
    await session.flush()
    provider = active_provider(context.providers, name)
    existing.provider_reference = await provider.invoice_finalized(
        session, invoice_out(existing, lines)
    )
    await session.flush()
    data = msgspec.to_builtins(invoice_out(existing, lines))
    await context.events.emit(session, "invoice.finalized", data, tenant_id=tenant_id)
    return existing


async def _invoice_for(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime
) -> Invoice | None:
    invoice: Invoice | None = await session.scalar(
        select(Invoice)
        .where(Invoice.tenant_id == tenant_id, Invoice.period_start == start)
        .execution_options(populate_existing=True)
    )
    return invoice


async def invoice_lines(session: AsyncSession, invoice: Invoice) -> list[InvoiceLine]:
    rows = await session.scalars(
        select(InvoiceLine)
        .where(InvoiceLine.invoice_id == invoice.id)
        .order_by(InvoiceLine.position)
    )
    return list(rows.all())


def invoice_out(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> InvoiceOut:
    out = [from_row(InvoiceLineOut, line, plan=line.plan_code) for line in lines or []]
    return from_row(InvoiceOut, invoice, lines=out)


def previous_period(now: datetime) -> datetime:
    """Start of the period before the one containing ``now``."""
    current, _ = period_bounds(now)
    return period_bounds(current - timedelta(microseconds=1))[0]
