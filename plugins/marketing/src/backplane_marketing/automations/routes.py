"""``/api/marketing/automations``: define, activate, pause, archive sequences; their funnel
and runs; ``/api/marketing/contacts/{id}/automations``: a contact's progress with the steps it
went through. The public one-click unsubscribe of automation messages is
``/api/marketing/t/{tenant_id}/au/{token}`` (GET: a confirmation page; POST: unsubscribe).

A definition is editable (``PUT``) while ``draft`` and immutable once activated: runs always
follow the definition they entered. To change a live sequence, create a new one and archive
the old (its open runs are ``exited``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, UnknownTenantError, requires
from backplane_marketing.automations.models import (
    ACTIVE,
    ARCHIVED,
    DRAFT,
    EXITED,
    PAUSED,
    RUNNING,
    Automation,
    AutomationMessage,
    AutomationRun,
    AutomationStepLog,
)
from backplane_marketing.automations.schema import (
    AutomationIn,
    Definition,
    ListJoined,
    SendEmail,
    SetAttribute,
    check_shape,
    decode_definition,
    filters_of,
    kind_of,
    trigger_key,
)
from backplane_marketing.campaigns.models import CampaignTemplate
from backplane_marketing.contacts import add_event, checked_attributes, find_contact
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.models import MailingList
from backplane_marketing.plugin import READ, WRITE
from backplane_marketing.segment_store import compile_filter
from backplane_marketing.settings import MarketingSettings

PerPage = Annotated[int, QueryParameter(ge=1, le=500, description="Items per page")]


class AutomationOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    status: str
    allow_reentry: bool
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    created_at: datetime
    activated_at: datetime | None


class StepFunnel(msgspec.Struct, kw_only=True):
    id: str
    type: str
    reached: int
    """Runs that went through this step."""
    waiting: int
    """Active runs whose next step is this one."""


class FunnelOut(msgspec.Struct, kw_only=True):
    automation_id: uuid.UUID
    entered: int
    by_status: dict[str, int]
    steps: list[StepFunnel]


class StepDone(msgspec.Struct, kw_only=True):
    step: str
    type: str
    outcome: dict[str, Any]
    at: datetime


class RunOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    automation_id: uuid.UUID
    automation_name: str
    contact_id: uuid.UUID
    entry: int
    status: str
    step: str | None
    next_run_at: datetime | None
    error: str | None
    entered_at: datetime
    finished_at: datetime | None
    history: list[StepDone] = msgspec.field(default_factory=list)


def _out(automation: Automation) -> AutomationOut:
    definition = automation.definition
    return AutomationOut(
        id=automation.id,
        name=automation.name,
        status=automation.status,
        allow_reentry=automation.allow_reentry,
        trigger=definition["trigger"],
        steps=definition["steps"],
        created_at=automation.created_at,
        activated_at=automation.activated_at,
    )


async def _check(db: AsyncSession, data: AutomationIn, settings: MarketingSettings) -> None:
    """The definition against the tenant's data (422 naming the step and the problem)."""
    check_shape(data.steps, settings.max_automation_steps)
    trigger = data.trigger
    if isinstance(trigger, ListJoined) and await db.get(MailingList, trigger.list_id) is None:
        raise MarketingError(f"trigger: no list {trigger.list_id}", 422)
    for step in data.steps:
        try:
            for raw in filters_of(step):
                await compile_filter(db, raw, settings)
            if (
                isinstance(step, SendEmail)
                and await db.get(CampaignTemplate, step.template_id) is None
            ):
                raise MarketingError(f"no template {step.template_id}", 422)
            if isinstance(step, SetAttribute):
                await checked_attributes(db, {step.key: step.value}, settings)
        except MarketingError as error:
            raise MarketingError(f"step {step.id!r}: {error}", error.status) from None


def _store(automation: Automation, data: AutomationIn) -> None:
    definition = Definition(trigger=data.trigger, steps=data.steps)
    automation.name = data.name
    automation.allow_reentry = data.allow_reentry
    automation.trigger_type, automation.trigger_key = trigger_key(data.trigger)
    automation.definition = msgspec.to_builtins(definition)


async def _find(db: AsyncSession, automation_id: uuid.UUID, *, lock: bool = False) -> Automation:
    query = select(Automation).where(Automation.id == automation_id)
    automation = await db.scalar(query.with_for_update() if lock else query)
    if automation is None:
        raise MarketingError(f"no automation {automation_id}", 404)
    return automation


async def _runs_out(db: AsyncSession, runs: list[AutomationRun], history: bool) -> list[RunOut]:
    names = {
        a.id: a.name
        for a in await db.scalars(
            select(Automation).where(Automation.id.in_({r.automation_id for r in runs}))
        )
    }
    done: dict[uuid.UUID, list[StepDone]] = {r.id: [] for r in runs}
    if history and runs:
        logs = await db.scalars(
            select(AutomationStepLog)
            .where(AutomationStepLog.run_id.in_(list(done)))
            .order_by(AutomationStepLog.at, AutomationStepLog.position)
        )
        for log in logs:
            done[log.run_id].append(
                StepDone(step=log.step, type=log.kind, outcome=log.outcome, at=log.at)
            )
    return [
        RunOut(
            id=r.id,
            automation_id=r.automation_id,
            automation_name=names.get(r.automation_id, ""),
            contact_id=r.contact_id,
            entry=r.entry,
            status=r.status,
            step=r.step,
            next_run_at=r.next_run_at,
            error=r.error,
            entered_at=r.entered_at,
            finished_at=r.finished_at,
            history=done[r.id],
        )
        for r in runs
    ]


class AutomationsController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/automations", guards=[requires(READ)])
    async def list_automations(self, db: NamedDependency[AsyncSession]) -> list[AutomationOut]:
        rows = await db.scalars(select(Automation).order_by(Automation.created_at, Automation.id))
        return [_out(a) for a in rows]

    @post("/automations", guards=[requires(WRITE)])
    async def create_automation(
        self,
        data: JSONBody[AutomationIn],
        db: NamedDependency[AsyncSession],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> AutomationOut:
        """A new sequence (``status``: ``draft``, the default, or ``active`` at once)."""
        await _check(db, data, plugin_settings)
        now = datetime.now(UTC)
        automation = Automation(id=uuid.uuid4(), status=data.status, created_at=now)
        _store(automation, data)
        if data.status == ACTIVE:
            automation.activated_at = now
        db.add(automation)
        await db.flush()
        return _out(automation)

    @get("/automations/{automation_id:uuid}", guards=[requires(READ)])
    async def get_automation(
        self, automation_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> AutomationOut:
        return _out(await _find(db, automation_id))

    @put("/automations/{automation_id:uuid}", guards=[requires(WRITE)])
    async def replace_automation(
        self,
        automation_id: FromPath[uuid.UUID],
        data: JSONBody[AutomationIn],
        db: NamedDependency[AsyncSession],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> AutomationOut:
        """Replace a draft's definition (409 once activated: create a new automation)."""
        automation = await _find(db, automation_id, lock=True)
        if automation.status != DRAFT:
            raise MarketingError(
                f"the automation is {automation.status}: a definition is immutable once "
                "activated (create a new automation and archive this one)",
                409,
            )
        await _check(db, data, plugin_settings)
        _store(automation, data)
        if data.status == ACTIVE:
            automation.status, automation.activated_at = ACTIVE, datetime.now(UTC)
        return _out(automation)

    @delete("/automations/{automation_id:uuid}", guards=[requires(WRITE)])
    async def delete_automation(
        self, automation_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> None:
        """Delete a draft or archived automation with its runs (409 if active or paused)."""
        automation = await _find(db, automation_id)
        if automation.status not in (DRAFT, ARCHIVED):
            raise MarketingError(f"the automation is {automation.status}: archive it first", 409)
        await db.delete(automation)

    @post("/automations/{automation_id:uuid}/{action:str}", guards=[requires(WRITE)])
    async def change_status(
        self,
        automation_id: FromPath[uuid.UUID],
        action: FromPath[str],
        db: NamedDependency[AsyncSession],
    ) -> AutomationOut:
        """``activate`` (a draft or paused one), ``pause`` (an active one: no enrolment, runs
        hold their place) or ``archive`` (for good: open runs are ``exited``); 409 for a
        move the state does not allow."""
        moves: dict[str, tuple[tuple[str, ...], str]] = {
            "activate": ((DRAFT, PAUSED), ACTIVE),
            "pause": ((ACTIVE,), PAUSED),
            "archive": ((DRAFT, ACTIVE, PAUSED), ARCHIVED),
        }
        if action not in moves:
            raise MarketingError(f"no action {action!r} (activate, pause, archive)", 404)
        automation = await _find(db, automation_id, lock=True)
        allowed, target = moves[action]
        if automation.status not in allowed:
            raise MarketingError(f"cannot {action} an automation that is {automation.status}", 409)
        now = datetime.now(UTC)
        automation.status = target
        if target == ACTIVE and automation.activated_at is None:
            automation.activated_at = now
        if target == ARCHIVED:
            await db.execute(
                update(AutomationRun)
                .where(
                    AutomationRun.automation_id == automation.id,
                    AutomationRun.status == RUNNING,
                )
                .values(status=EXITED, next_run_at=None, finished_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return _out(automation)

    @get("/automations/{automation_id:uuid}/funnel", guards=[requires(READ)])
    async def funnel(
        self, automation_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> FunnelOut:
        """How many contacts entered, by state, and per step how many went through it and
        how many wait for it now."""
        automation = await _find(db, automation_id)
        definition = decode_definition(automation.definition)
        reached = dict(
            (
                await db.execute(
                    select(
                        AutomationStepLog.step, func.count(func.distinct(AutomationStepLog.run_id))
                    )
                    .where(AutomationStepLog.automation_id == automation.id)
                    .group_by(AutomationStepLog.step)
                )
            )
            .tuples()
            .all()
        )
        waiting = dict(
            (
                await db.execute(
                    select(AutomationRun.step, func.count())
                    .where(
                        AutomationRun.automation_id == automation.id,
                        AutomationRun.status == RUNNING,
                    )
                    .group_by(AutomationRun.step)
                )
            )
            .tuples()
            .all()
        )
        from backplane_marketing.automations.engine import count_runs

        by_status = await count_runs(db, automation.id)
        return FunnelOut(
            automation_id=automation.id,
            entered=sum(by_status.values()),
            by_status=by_status,
            steps=[
                StepFunnel(
                    id=step.id,
                    type=kind_of(step),
                    reached=int(reached.get(step.id, 0)),
                    waiting=int(waiting.get(step.id, 0)),
                )
                for step in definition.steps
            ],
        )

    @get("/automations/{automation_id:uuid}/runs", guards=[requires(READ)])
    async def runs(
        self,
        automation_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        status: Annotated[
            Literal["active", "finished", "failed", "exited"] | None,
            QueryParameter(description="Only runs in this state"),
        ] = None,
        limit: PerPage = 50,
    ) -> list[RunOut]:
        """The automation's runs, latest first (without their step history)."""
        await _find(db, automation_id)
        query = select(AutomationRun).where(AutomationRun.automation_id == automation_id)
        if status is not None:
            query = query.where(AutomationRun.status == status)
        query = query.order_by(AutomationRun.entered_at.desc(), AutomationRun.id).limit(limit)
        return await _runs_out(db, list(await db.scalars(query)), history=False)

    @get("/contacts/{contact_id:uuid}/automations", guards=[requires(READ)])
    async def contact_progress(
        self, contact_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> list[RunOut]:
        """The contact's passes through automations, latest first, each with its steps."""
        await find_contact(db, contact_id)
        query = (
            select(AutomationRun)
            .where(AutomationRun.contact_id == contact_id)
            .order_by(AutomationRun.entered_at.desc(), AutomationRun.id)
            .limit(200)
        )
        return await _runs_out(db, list(await db.scalars(query)), history=True)


def _page(title: str, body: str) -> Response[str]:
    from backplane_marketing.tracking.routes import _page as page

    return page(title, body)


async def _message(kernel: Kernel, tenant_id: uuid.UUID, token: str, work: Any) -> Any:
    try:
        async with kernel.tenant(tenant_id) as bound:
            found = await bound.db.scalar(
                select(AutomationMessage).where(AutomationMessage.token == token[:64])
            )
            if found is None:
                raise MarketingError("unknown or expired link", 404)
            return await work(bound, found)
    except UnknownTenantError:
        raise MarketingError("unknown or expired link", 404) from None


class AutomationUnsubscribeController(Controller):
    """Public (no login): the one-click unsubscribe of automation messages (RFC 8058)."""

    path = "/t/{tenant_id:uuid}/au"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/{token:str}", media_type="text/html")
    async def confirm(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """A page with the unsubscribe button: a GET changes nothing (link scanners GET)."""

        async def work(_bound: Kernel, _message_row: AutomationMessage) -> None:
            return None

        await _message(kernel, tenant_id, token, work)
        return _page(
            "Unsubscribe",
            '<form method="post"><button type="submit">Unsubscribe</button></form>',
        )

    @post("/{token:str}", status_code=200, media_type="text/html")
    async def unsubscribe(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """Unsubscribe at once (``List-Unsubscribe=One-Click``): every later campaign and
        automation message skips the contact."""
        from backplane_marketing.tracking.service import suppress

        async def work(bound: Kernel, message: AutomationMessage) -> None:
            if message.unsubscribed_at is not None:
                return
            message.unsubscribed_at = datetime.now(UTC)
            await suppress(bound.db, tenant_id, message.contact_id, "unsubscribed")
            add_event(
                bound.db,
                message.contact_id,
                "unsubscribed",
                {"automation_id": str(message.automation_id)},
            )

        await _message(kernel, tenant_id, token, work)
        return _page("Unsubscribed", "<p>You will not receive these messages again.</p>")
