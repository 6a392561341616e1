"""Recording usage in the caller's transaction, idempotently, with hard quotas held atomically.

``UsageRecorder.record_many`` (and ``record``, a batch of one) writes through
:mod:`backplane.billing.recording`: a repeated transaction id is ignored, even concurrently, and
a hard limit is held by one conditional ``UPDATE`` of the period's counter. Every write belongs
to the caller's transaction: usage commits exactly when the business action does, and a refused
request leaves nothing once the caller rolls back.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import ADDITIVE
from backplane.billing.recording import (
    EventError,
    Limit,
    Recorded,
    add_to_counter,
    counter_value,
    delete_events,
    entitlements_for,
    insert_events,
    notice_if_reached,
    resolve,
    summarise,
)
from backplane.db.tenancy import session_tenant
from backplane.events import Events


class UnknownMeterError(LookupError):
    """No plugin registered a meter with this code."""


class QuotaExceeded(Exception):  # noqa: N818 - named for what the client sees (HTTP 429)
    """A hard limit would be crossed; nothing of the request is kept."""

    def __init__(self, meter: str, limit: float, used: float, reset_at: datetime) -> None:
        super().__init__(
            f"quota for {meter} spent: {used:g} of {limit:g} until {reset_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        self.meter, self.limit, self.used, self.reset_at = meter, limit, used, reset_at


class UsageResult(msgspec.Struct, frozen=True):
    """What recording one use answered: whether it counted, and the meter's limit and usage
    after it (``record_many(..., partial=True)``: ``error`` says why an item was refused)."""

    recorded: bool
    """False when ``transaction_id`` was recorded before (the value was not counted again)."""
    meter: str
    limit: float | None = None
    used: float | None = None
    reset_at: datetime | None = None
    error: str | None = None
    """Why the item was refused (``record_many(..., partial=True)`` only)."""


class UsageItem(msgspec.Struct, frozen=True):
    """One use for :meth:`UsageRecorder.record_many`: the arguments of one ``record`` call, so
    that a handler metering several things per request pays for one batch of statements."""

    code: str
    value: float = 1
    properties: dict[str, Any] | None = None
    transaction_id: str | None = None
    """Idempotency key per tenant (a fresh one when None: every call counts)."""
    occurred_at: datetime | None = None
    """When the use happened (now when None); decides the period and the roll-up hour."""


CounterRow = tuple[uuid.UUID, str, datetime]
"""A period counter's key: tenant, meter code, period start."""


def period_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar-month billing period (UTC) containing ``moment``."""
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


class GroupUsage(msgspec.Struct, frozen=True, kw_only=True):
    """A meter's usage in one group over a window (:meth:`UsageRecorder.window`)."""

    group: dict[str, Any]
    """The meter's ``group_by`` values (empty for a meter without ``group_by``)."""
    count: int
    """Events recorded."""
    value: float
    """The meter's aggregation over the window (the event count for ``count``, the total of
    the values for ``sum``, ...)."""


class UsageRecorder:
    """Injected into handlers as ``usage``; bound to the request's tenant-scoped session."""

    def __init__(
        self,
        session: AsyncSession,
        meters: dict[str, Meter],
        events: Events,
        results: list[UsageResult] | None = None,
    ) -> None:
        self.session, self.meters, self.events = session, meters, events
        self.results: list[UsageResult] = [] if results is None else results
        """What this request recorded (the app turns limits into response headers)."""

    async def window(self, code: str, start: datetime, end: datetime) -> list[GroupUsage]:
        """This tenant's usage of meter ``code`` over ``[start, end)`` per group, exact at any
        boundary (what invoices price): for plugins that bill their own items on the tenant's
        invoice (``invoice_closing``). ``KeyError`` for an unregistered meter."""
        from backplane.billing.aggregate import window_usage

        tenant_id = session_tenant(self.session)
        if tenant_id is None:
            raise PermissionError("usage is read for a tenant")
        meter = self.meters[code]
        usage = await window_usage(self.session, tenant_id, meter, start, end)
        return [
            GroupUsage(
                group=msgspec.json.decode(key) if key else {},
                count=fold.count,
                value=fold.value(meter.aggregation),
            )
            for key, fold in sorted(usage.groups.items())
            if fold.count or fold.values
        ]

    async def record(
        self,
        code: str,
        value: float = 1,
        *,
        transaction_id: str | None = None,
        properties: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> UsageResult:
        """Record one use (a batch of one, so both entry points share every rule)."""
        item = UsageItem(code, value, properties, transaction_id, occurred_at)
        return (await self.record_many([item]))[0]

    async def record_many(
        self, items: Sequence[UsageItem], *, partial: bool = False, enforce_limits: bool = True
    ) -> list[UsageResult]:
        """Record ``items`` as if by one ``record`` call each, in order, in a few statements.

        The results, the idempotency (a transaction id seen before, or earlier in the batch,
        is not counted again), :class:`QuotaExceeded` (for the first item in batch order that
        would cross a hard limit, with the usage it would have seen), ``self.results`` and
        the ``quota.reached`` notice are those of the one-by-one calls. Every item is checked
        before anything is written, so an invalid item leaves the transaction untouched; after
        :class:`QuotaExceeded` the caller rolls back, as after ``record``.

        With ``partial`` (batches from external services, ``POST /api/billing/events``) a bad
        item or one past a hard limit never fails the batch: it is answered with ``error`` set
        and left out (its transaction id may be sent again), and the items that fit are kept.

        Without ``enforce_limits`` hard limits refuse nothing (usage of work already served,
        which must be billed: :class:`~backplane.billing.group.UsageWriter`'s deferred rounds).
        """
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        recorded: list[Recorded | None] = []
        results: list[UsageResult] = []
        for item in items:
            try:
                recorded.append(self._check(item, now))
                results.append(UsageResult(recorded=False, meter=item.code))
            except (ValueError, UnknownMeterError) as exc:  # EventError is a ValueError
                if not partial:
                    raise
                recorded.append(None)
                results.append(UsageResult(recorded=False, meter=item.code, error=str(exc)))
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "meter": item.code,
                    "transaction_id": item.transaction_id or uuid.uuid4().hex,
                    "value": recorded[-1].resolved.value if recorded[-1] else 0,
                    "properties": item.properties or {},
                    "occurred_at": recorded[-1].occurred_at if recorded[-1] else now,
                }
            )
        if not rows:
            return []
        tenant_id = session_tenant(self.session)
        if tenant_id is None:
            raise PermissionError("usage can only be recorded for a tenant")
        fresh, seen = [], set()  # an id repeated within the batch is a duplicate too
        for position, row in enumerate(rows):
            row["tenant_id"] = tenant_id
            if recorded[position] is not None and row["transaction_id"] not in seen:
                seen.add(row["transaction_id"])
                fresh.append(position)
        inserted = await insert_events(self.session, [rows[i] for i in fresh])
        new = [i for i in fresh if rows[i]["transaction_id"] in inserted]
        for i in new:
            results[i] = UsageResult(recorded=True, meter=rows[i]["meter"])
        counted = [(i, event) for i in new if (event := recorded[i]) is not None]
        refused = await self._count(tenant_id, counted, results, partial, enforce_limits)
        if refused:
            await delete_events(
                self.session, tenant_id, [rows[i]["transaction_id"] for i in refused]
            )
        await summarise(self.session, tenant_id, [e for i, e in counted if i not in refused])
        return results

    def _check(self, item: UsageItem, now: datetime) -> Recorded:
        meter = self.meters.get(item.code)
        if meter is None:
            raise UnknownMeterError(f"no meter {item.code!r} is registered")
        resolved = resolve(meter, item.value, item.properties or {})
        if item.value < 0:  # a count meter ignores the value, but a negative one is a bug
            raise EventError(f"{item.code}: usage values must be finite and not negative")
        return Recorded(meter, (item.occurred_at or now).astimezone(UTC), resolved)

    async def _count(
        self,
        tenant_id: uuid.UUID,
        new: list[tuple[int, Recorded]],
        results: list[UsageResult],
        partial: bool,
        enforce_limits: bool,
    ) -> set[int]:
        """Add the new events of additive meters to their period counters: one conditional
        ``UPDATE`` per (meter, period), in sorted order so that concurrent batches queue on
        the same rows instead of deadlocking, each held by the tenant's hard limit.

        The results (and ``QuotaExceeded``) carry the running totals one call per event would
        have seen, so headers and 429 bodies do not depend on how the events were batched.
        Returns the positions refused by a hard limit (``partial`` only; otherwise raises).
        """
        groups: dict[tuple[str, datetime], list[int]] = {}
        for position, event in new:
            if event.meter.aggregation in ADDITIVE:
                key = (event.meter.code, period_bounds(event.occurred_at)[0])
                groups.setdefault(key, []).append(position)
        if not groups:
            return set()
        values = {position: event.resolved.value for position, event in new}
        limits = await entitlements_for(self.session, tenant_id, sorted({c for c, _ in groups}))
        refused: dict[int, QuotaExceeded] = {}
        notices: list[tuple[str, tuple[datetime, datetime], Limit, list[float]]] = []
        for (code, start), positions in sorted(groups.items()):
            period = period_bounds(start)
            entitlement = limits.get(code)
            hard = (
                entitlement.limit
                if enforce_limits and entitlement is not None and entitlement.hard
                else None
            )
            added = [values[p] for p in positions]
            totals, seen = await self._add((tenant_id, code, start), added, hard, partial)
            for p in positions[len(totals) :]:
                assert hard is not None  # only a hard limit refuses
                refused[p] = QuotaExceeded(code, hard, seen, period[1])
            if entitlement is not None and totals:
                notices.append((code, period, entitlement, totals))
            for position, so_far in zip(positions, totals, strict=False):
                results[position] = UsageResult(
                    recorded=True,
                    meter=code,
                    limit=entitlement.limit if entitlement is not None else None,
                    used=so_far,
                    reset_at=period[1],
                )
        counted = sorted(p for positions in groups.values() for p in positions)
        if refused and not partial:  # the caller rolls back: the counters above go with it
            first = min(refused)
            self.results.extend(results[p] for p in counted if p < first)
            raise refused[first]
        for position, refusal in refused.items():
            results[position] = UsageResult(
                False, refusal.meter, refusal.limit, refusal.used, refusal.reset_at, str(refusal)
            )
        for code, period, entitlement, totals in notices:
            # The total a one-by-one call first reached the limit with (the notice reports it).
            reached = next((t for t in totals if t >= entitlement.limit), totals[-1])
            await notice_if_reached(
                self.session, self.events, tenant_id, code, period, entitlement, reached
            )
        self.results.extend(results[p] for p in counted if p not in refused)
        return set(refused)

    async def _add(
        self, row: CounterRow, added: list[float], hard: float | None, partial: bool
    ) -> tuple[list[float], float]:
        """Add a (meter, period) group to its counter: the running totals of what was
        counted, and the usage a refused item sees (see :meth:`_fit`)."""
        used = await add_to_counter(self.session, *row, sum(added), hard)
        if used is not None:
            totals = running_totals(used - sum(added), added)
            totals[-1] = used  # exactly what the database holds
            return totals, used
        if hard is None:
            raise RuntimeError(f"could not add usage of {row[1]} to its counter")
        return await self._fit(row, added, hard, partial)

    async def _fit(
        self, row: CounterRow, added: list[float], hard: float, partial: bool
    ) -> tuple[list[float], float]:
        """After the group was refused: the running totals of the longest prefix of ``added``
        that fits under ``hard``, and the usage the first refused item sees. Strict batches
        only need to know where one-by-one calls would have stopped (nothing is added: the
        caller rolls back; the first item when none crosses, as the counter moved meanwhile);
        ``partial`` ones add the prefix, trying again if the counter moved meanwhile."""
        for _ in range(5):
            before = await counter_value(self.session, *row)
            totals = running_totals(before, added)
            kept = next((i for i, t in enumerate(totals) if t > hard), len(added) * partial)
            if not partial or kept == 0:
                return totals[:kept], totals[kept - 1] if kept else before
            used = await add_to_counter(self.session, *row, sum(added[:kept]), hard)
            if used is not None:
                totals = running_totals(used - sum(added[:kept]), added[:kept])
                return totals, used
        return [], before


def running_totals(start: float, values: list[float]) -> list[float]:
    """The counter after each value, as adding them one by one would leave it."""
    return list(itertools.accumulate(values, initial=start))[1:]
