"""The plan catalogue: definitions (a TOML or JSON file, or the API's view) and their storage.

A plan is written as one :class:`PlanSpec` document; storing it replaces the plan's
entitlements and charges as a whole, so what an operator reads back (``plans show``) is exactly
what they wrote. Subscribers of a changed plan get their metered limits re-derived at once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import LIMITED
from backplane.billing.models import from_row
from backplane.billing.plan_models import (
    FEATURE,
    METERED,
    STATIC,
    Plan,
    PlanCharge,
    PlanEntitlement,
)
from backplane.billing.pricing import ChargeSpec, Minor, PricingError

PlanCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.:-]{0,99}$")]
FREE_PLAN = "free"


class PlanError(ValueError):
    """A plan definition or a subscription change was refused; the message says why."""


class LimitSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A metered entitlement: at most ``limit`` of ``meter`` per period."""

    meter: str
    limit: Annotated[float, msgspec.Meta(ge=0)]
    hard: bool = True
    """Hard limits refuse usage past them (429); soft limits only notify (``quota.reached``)."""


class PlanSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A plan as operators write it and as the API shows it.

    Money is in minor units of ``currency`` (see :mod:`backplane.billing.pricing`).
    """

    code: PlanCode
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "USD"
    interval: Literal["month"] = "month"
    fee: Minor = 0
    """Fixed fee per period; a partial period pays its share by time."""
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    self_service: bool = False
    active: bool = True
    features: list[Key] = msgspec.field(default_factory=list)
    """Boolean entitlements (``requires_entitlement("name")`` on routes)."""
    static: dict[Key, Annotated[float, msgspec.Meta(ge=0)]] = msgspec.field(default_factory=dict)
    """Static allowances such as ``seats = 5``."""
    limits: list[LimitSpec] = msgspec.field(default_factory=list)
    charges: list[ChargeSpec] = msgspec.field(default_factory=list)

    def check(self, meters: dict[str, Meter]) -> None:
        """Raise :class:`PlanError` unless meters exist and charges fit their models."""
        seen: set[str] = set()
        for limit in self.limits:
            meter = meters.get(limit.meter)
            if meter is None:
                raise PlanError(f"plan {self.code}: limit on unknown meter {limit.meter!r}")
            if meter.aggregation not in LIMITED:
                raise PlanError(
                    f"plan {self.code}: {limit.meter} aggregates by {meter.aggregation}; only "
                    "count and sum meters have limits per period, and latest (gauge) meters "
                    "a cap on their level"
                )
            if limit.meter in seen:
                raise PlanError(f"plan {self.code}: two limits on {limit.meter}")
            seen.add(limit.meter)
        charged: set[str] = set()
        for charge in self.charges:
            if charge.meter not in meters:
                raise PlanError(f"plan {self.code}: charge on unknown meter {charge.meter!r}")
            if charge.meter in charged:
                raise PlanError(f"plan {self.code}: two charges on {charge.meter}")
            charged.add(charge.meter)
            try:
                charge.check()
            except PricingError as exc:
                raise PlanError(f"plan {self.code}: {exc}") from None


def parse_plan_file(name: str, content: bytes) -> list[PlanSpec]:
    """Plans from a ``.toml`` (one plan, or ``[[plans]]``) or ``.json`` (object or array) file."""
    import tomllib

    try:
        toml = name.endswith(".toml")
        raw = tomllib.loads(content.decode()) if toml else msgspec.json.decode(content)
    except (tomllib.TOMLDecodeError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{name}: cannot parse: {exc}") from None
    items = raw.get("plans", [raw]) if isinstance(raw, dict) else raw
    try:
        return msgspec.convert(items, list[PlanSpec])
    except msgspec.ValidationError as exc:
        raise PlanError(f"{name}: {exc}") from None


async def plan_by_code(session: AsyncSession, code: str) -> Plan | None:
    plan: Plan | None = await session.scalar(select(Plan).where(Plan.code == code))
    return plan


async def store_plan(session: AsyncSession, spec: PlanSpec, meters: dict[str, Meter]) -> Plan:
    """Create or replace plan ``spec.code``; return the row (flushed)."""
    spec.check(meters)
    plan = await plan_by_code(session, spec.code)
    if plan is None:
        plan = Plan(id=uuid.uuid4(), code=spec.code)
        session.add(plan)
    for name in ("name", "description", "currency", "interval", "fee", "self_service", "active"):
        setattr(plan, name, getattr(spec, name))
    plan.updated_at = datetime.now(UTC)
    await session.flush()
    await session.execute(delete(PlanEntitlement).where(PlanEntitlement.plan_id == plan.id))
    await session.execute(delete(PlanCharge).where(PlanCharge.plan_id == plan.id))
    rights: list[tuple[str, str, float | None, bool]] = [
        (FEATURE, f, None, True) for f in dict.fromkeys(spec.features)
    ]
    rights += [(STATIC, k, v, True) for k, v in spec.static.items()]
    rights += [(METERED, x.meter, x.limit, x.hard) for x in spec.limits]
    rows: list[PlanEntitlement | PlanCharge] = [
        PlanEntitlement(plan_id=plan.id, kind=kind, key=key, value=value, hard=hard)
        for kind, key, value, hard in rights
    ]
    rows += [
        PlanCharge(plan_id=plan.id, meter=c.meter, position=i, spec=msgspec.to_builtins(c))
        for i, c in enumerate(spec.charges)
    ]
    session.add_all(rows)
    await session.flush()
    return plan


async def plan_spec(session: AsyncSession, plan: Plan) -> PlanSpec:
    """The stored plan as a :class:`PlanSpec` (what the API and ``plans show`` print)."""
    e = PlanEntitlement
    rights = (
        await session.scalars(select(e).where(e.plan_id == plan.id).order_by(e.kind, e.key))
    ).all()
    return from_row(
        PlanSpec,
        plan,
        features=[r.key for r in rights if r.kind == FEATURE],
        static={r.key: float(r.value or 0) for r in rights if r.kind == STATIC},
        limits=[
            LimitSpec(meter=r.key, limit=float(r.value or 0), hard=r.hard)
            for r in rights
            if r.kind == METERED
        ],
        charges=await plan_charges(session, plan.id),
    )


async def plan_charges(session: AsyncSession, plan_id: uuid.UUID) -> list[ChargeSpec]:
    rows = await session.scalars(
        select(PlanCharge).where(PlanCharge.plan_id == plan_id).order_by(PlanCharge.position)
    )
    return [msgspec.convert(c.spec, ChargeSpec) for c in rows]


async def ensure_plan(session: AsyncSession, code: str, currency: str) -> Plan:
    """Plan ``code``; the built-in ``free`` plan (empty) is created on first use."""
    plan = await plan_by_code(session, code)
    if plan is not None:
        return plan
    if code != FREE_PLAN:
        raise PlanError(f"no plan {code!r} (create it with `backplane plans create`)")
    spec = PlanSpec(code=FREE_PLAN, name="Free", currency=currency, self_service=True)
    try:
        async with session.begin_nested():  # two first tenants at once: one creates it
            return await store_plan(session, spec, {})
    except IntegrityError:
        found = await plan_by_code(session, code)
        if found is None:
            raise
        return found
