"""Running automations: enrolment when a trigger fires, and the advance of due runs.

Enrolment (``enrol``, ``scores_changed``) inserts one run per matching active automation
with ``INSERT ... ON CONFLICT DO NOTHING`` on ``(automation, contact, entry)``: a contact
enters a sequence at most once (``entry`` 1), or, with ``allow_reentry``, once more each time
the trigger fires after its previous pass ended. It marks the session so that ``kick`` queues
an advance task in the same transaction; without one, the per-tenant tick (every ten minutes)
picks the run up.

Advancing (``advance``): due runs (``status = active``, ``next_run_at <= now``, their
automation active) are taken ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two workers never take
the same run) and each one runs its steps until a ``wait`` (which sets ``next_run_at`` and
queues an advance for then) or the end. A step's effects (tags, attributes, the message
handed to the kernel's mail service, whose row and delivery task join the transaction), its
log row and the run's new state commit together: a worker killed mid-way commits none of them
and the redelivered task redoes the step. A message row is unique per run and step, so a step
is never handed over twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, delete, func, or_, select

from backplane import MailError
from backplane_marketing.automations.models import (
    ACTIVE,
    FAILED,
    FINISHED,
    RUNNING,
    Automation,
    AutomationMessage,
    AutomationRun,
    AutomationStepLog,
)
from backplane_marketing.automations.schema import (
    AddTag,
    Branch,
    Condition,
    Definition,
    RemoveTag,
    SendEmail,
    SetAttribute,
    Step,
    Wait,
    decode_definition,
    kind_of,
    resolve,
)
from backplane_marketing.campaigns.models import CampaignTemplate, Suppression
from backplane_marketing.campaigns.render import contact_context, render
from backplane_marketing.campaigns.send import new_token, tracking_base
from backplane_marketing.dialect import dialect_name, insert_for
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import Contact, ContactTag
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.wakeups import wake_at

KICK = "marketing.automations.kick"
"""Session flag: a run was enrolled in this transaction (``kick`` queues an advance)."""
ADVANCE_TASK = "marketing.automation_advance"
UNSUBSCRIBE_PATH = "au"
"""Automation messages' one-click unsubscribe: ``/api/marketing/t/{tenant}/au/{token}``."""


async def enrol(db: Any, contact_id: uuid.UUID, trigger_type: str, key: str | None) -> int:
    """Enter the contact into every active automation of this trigger (whose key is ``key``
    or unset); how many runs began."""
    query = select(Automation).where(
        Automation.status == ACTIVE,
        Automation.trigger_type == trigger_type,
        or_(Automation.trigger_key.is_(None), Automation.trigger_key == key),
    )
    entered = 0
    for automation in list(await db.scalars(query)):
        entered += await _enter(db, automation, contact_id)
    return entered


async def active_trigger_types(db: Any) -> set[str]:
    """The trigger types of the tenant's active automations (a bulk write asks first, and
    pays for finding what it changed only when something listens)."""
    query = select(Automation.trigger_type).where(Automation.status == ACTIVE).distinct()
    return set(await db.scalars(query))


async def enrol_many(
    db: Any, trigger_type: str, fired: Iterable[tuple[uuid.UUID, str | None]]
) -> int:
    """:func:`enrol` for many ``(contact_id, key)`` at once (an import's new tags or list
    subscriptions): one multi-row insert per automation; how many contacts were offered."""
    by_key: dict[str | None, list[uuid.UUID]] = defaultdict(list)
    for contact_id, key in fired:
        by_key[key].append(contact_id)
    if not by_key:
        return 0
    query = select(Automation).where(
        Automation.status == ACTIVE, Automation.trigger_type == trigger_type
    )
    offered = 0
    for automation in list(await db.scalars(query)):
        if automation.trigger_key is None:
            ids = list(dict.fromkeys(c for group in by_key.values() for c in group))
        else:
            ids = list(dict.fromkeys(by_key.get(automation.trigger_key, [])))
        if not ids:
            continue
        offered += len(ids)
        if automation.allow_reentry:
            for contact_id in ids:
                await _enter(db, automation, contact_id)
            continue
        now = datetime.now(UTC)
        first = automation.definition["steps"][0]["id"]
        rows = [
            {
                "id": uuid.uuid4(),
                "tenant_id": automation.tenant_id,
                "automation_id": automation.id,
                "contact_id": contact_id,
                "entry": 1,
                "status": RUNNING,
                "step": first,
                "next_run_at": now,
                "entered_at": now,
                "updated_at": now,
            }
            for contact_id in ids
        ]
        await db.execute(insert_for(db, AutomationRun.__table__).on_conflict_do_nothing(), rows)
        db.info[KICK] = True
    return offered


async def scores_changed(db: Any, changes: Mapping[uuid.UUID, tuple[float | None, float]]) -> int:
    """Enrol contacts whose score went from below an automation's threshold (or none) to at
    least it; how many runs began."""
    if not changes:
        return 0
    query = select(Automation).where(
        Automation.status == ACTIVE, Automation.trigger_type == "score_crossed"
    )
    entered = 0
    for automation in list(await db.scalars(query)):
        threshold = float(automation.definition["trigger"]["threshold"])
        for contact_id, (old, new) in changes.items():
            if (old is None or old < threshold) and new >= threshold:
                entered += await _enter(db, automation, contact_id)
    return entered


async def _enter(db: Any, automation: Automation, contact_id: uuid.UUID) -> int:
    entry = 1
    if automation.allow_reentry:
        rows = (
            await db.execute(
                select(AutomationRun.entry, AutomationRun.status).where(
                    AutomationRun.automation_id == automation.id,
                    AutomationRun.contact_id == contact_id,
                )
            )
        ).all()
        if any(status == RUNNING for _, status in rows):
            return 0
        entry = max((e for e, _ in rows), default=0) + 1
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "tenant_id": automation.tenant_id,
        "automation_id": automation.id,
        "contact_id": contact_id,
        "entry": entry,
        "status": RUNNING,
        "step": automation.definition["steps"][0]["id"],
        "next_run_at": now,
        "entered_at": now,
        "updated_at": now,
    }
    statement = insert_for(db, AutomationRun.__table__).values(values).on_conflict_do_nothing()
    done: Any = await db.execute(statement)
    if not done.rowcount:
        return 0
    db.info[KICK] = True
    return 1


async def kick(kernel: Any) -> None:
    """Queue an advance in this transaction if a run was enrolled in it."""
    if kernel.db.info.pop(KICK, False):
        await kernel.tasks.enqueue(ADVANCE_TASK)


class _Runner:
    """One advance: caches automations' definitions, compiled filters and templates."""

    def __init__(self, kernel: Any, now: datetime) -> None:
        self.kernel, self.db, self.now = kernel, kernel.db, now
        self.settings: MarketingSettings = kernel.plugin_settings
        self.definitions: dict[uuid.UUID, tuple[Automation, Definition]] = {}
        self.filters: dict[str, ColumnElement[bool]] = {}
        self.wakes: set[datetime] = set()
        """Due times an advance is queued for already (runs of one pass share their waits)."""

    async def wake(self, due: datetime) -> None:
        """Queue an advance for when a run's wait ends (once per due second in this pass)."""
        if due.replace(microsecond=0) not in self.wakes:
            self.wakes.add(due.replace(microsecond=0))
            await wake_at(self.kernel, ADVANCE_TASK, due)

    async def definition(self, automation_id: uuid.UUID) -> tuple[Automation, Definition]:
        if automation_id not in self.definitions:
            automation = await self.db.get(Automation, automation_id)
            assert automation is not None
            self.definitions[automation_id] = (automation, decode_definition(automation.definition))
        return self.definitions[automation_id]

    async def matches(self, contact_id: uuid.UUID, raw: dict[str, Any]) -> bool:
        from backplane_marketing.segment_store import compile_filter

        key = msgspec.json.encode(raw).decode()
        if key not in self.filters:
            self.filters[key] = await compile_filter(self.db, raw, self.settings)
        found = await self.db.scalar(
            select(Contact.id).where(Contact.id == contact_id, self.filters[key])
        )
        return found is not None

    def log(self, run: AutomationRun, step: Step, position: int, outcome: dict[str, Any]) -> None:
        self.db.add(
            AutomationStepLog(
                id=uuid.uuid4(),
                run_id=run.id,
                automation_id=run.automation_id,
                step=step.id,
                position=position,
                kind=kind_of(step),
                outcome=outcome,
                at=self.now,
            )
        )

    async def advance(self, run: AutomationRun) -> None:
        automation, definition = await self.definition(run.automation_id)
        steps = definition.steps
        position = {step.id: index for index, step in enumerate(steps)}
        current = run.step
        run.updated_at = self.now
        for _ in range(len(steps) + 1):  # jumps only go forward: this always ends
            if current is None:
                run.status, run.step, run.next_run_at = FINISHED, None, None
                run.finished_at = self.now
                return
            index = position.get(current)
            if index is None:  # pragma: no cover - definitions are immutable once active
                run.status, run.error = FAILED, f"no step {current!r}"
                return
            step = steps[index]
            try:
                target, outcome, pause = await self.execute(automation, run, step)
            except (MarketingError, MailError) as error:
                run.status, run.next_run_at = FAILED, None
                run.error = f"step {step.id!r}: {error}"[:500]
                self.log(run, step, index, {"error": str(error)[:500]})
                return
            self.log(run, step, index, outcome)
            current = resolve(steps, index, target)
            if pause is not None:
                run.step, run.next_run_at = current, self.now + pause
                await self.wake(run.next_run_at)
                return

    async def execute(  # noqa: PLR0911 - one return per kind of step
        self, automation: Automation, run: AutomationRun, step: Step
    ) -> tuple[str | None, dict[str, Any], timedelta | None]:
        """Do one step: where it goes, what it did, and how long the run waits after it."""
        contact_id = run.contact_id
        if isinstance(step, Wait):
            pause = timedelta(seconds=step.total_seconds)
            return step.next, {"until": (self.now + pause).isoformat()}, pause
        if isinstance(step, Condition):
            matched = await self.matches(contact_id, step.filter)
            return (step.then if matched else step.otherwise), {"matched": matched}, None
        if isinstance(step, Branch):
            for number, case in enumerate(step.cases):
                if await self.matches(contact_id, case.filter):
                    return case.next, {"case": number}, None
            return step.default, {"case": None}, None
        if isinstance(step, SendEmail):
            return step.next, await self.send(automation, run, step), None
        if isinstance(step, AddTag):
            added = await self.add_tag(contact_id, step.tag)
            return step.next, {"tag": step.tag, "added": added}, None
        if isinstance(step, RemoveTag):
            removed: Any = await self.db.execute(
                delete(ContactTag)
                .where(ContactTag.contact_id == contact_id, ContactTag.tag == step.tag)
                .execution_options(synchronize_session=False)
            )
            return step.next, {"tag": step.tag, "removed": bool(removed.rowcount)}, None
        assert isinstance(step, SetAttribute)
        return step.next, await self.set_attribute(contact_id, step), None

    async def add_tag(self, contact_id: uuid.UUID, tag: str) -> bool:
        contact = await self.db.get(Contact, contact_id)
        assert contact is not None
        row = {"tenant_id": contact.tenant_id, "contact_id": contact_id, "tag": tag}
        added: Any = await self.db.execute(
            insert_for(self.db, ContactTag.__table__).values(row).on_conflict_do_nothing()
        )
        if added.rowcount:
            await enrol(self.db, contact_id, "tag_added", tag)  # other sequences may start
        return bool(added.rowcount)

    async def set_attribute(self, contact_id: uuid.UUID, step: SetAttribute) -> dict[str, Any]:
        from backplane_marketing.contacts import checked_attributes

        checked = await checked_attributes(self.db, {step.key: step.value}, self.settings)
        contact = await self.db.get(Contact, contact_id)
        assert contact is not None
        merged = {**(contact.attributes or {}), **checked}
        contact.attributes = {k: v for k, v in merged.items() if v is not None}
        contact.updated_at = self.now
        return {"key": step.key, "value": checked.get(step.key)}

    async def send(
        self, automation: Automation, run: AutomationRun, step: SendEmail
    ) -> dict[str, Any]:
        """The campaign rules: the sandboxed template, RFC 8058 headers, no message to a
        suppressed contact or one whose consent is withdrawn (the step is then skipped)."""
        db = self.db
        contact = await db.get(Contact, run.contact_id)
        assert contact is not None
        suppressed = await db.get(Suppression, contact.id)
        if suppressed is not None:
            return {"skipped": suppressed.reason}
        if contact.consent == "withdrawn":
            return {"skipped": "consent withdrawn"}
        template = await db.get(CampaignTemplate, step.template_id)
        if template is None:
            raise MarketingError(f"the template {step.template_id} is gone", 422)
        token = new_token()
        unsubscribe = f"{tracking_base(self.kernel)}/{UNSUBSCRIBE_PATH}/{token}"
        context = contact_context(
            contact.email,
            contact.name,
            contact.attributes or {},
            unsubscribe_url=unsubscribe,
            campaign={"name": automation.name},
        )
        message = render(
            template.subject,
            template.html,
            template.text,
            context,
            self.settings.max_rendered_chars,
        )
        mail_id = await self.kernel.mail.send(
            contact.email,
            message.subject,
            message.text,
            html=message.html,
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        db.add(
            AutomationMessage(
                id=uuid.uuid4(),
                run_id=run.id,
                contact_id=contact.id,
                automation_id=automation.id,
                step=step.id,
                token=token,
                mail_id=mail_id,
                sent_at=self.now,
            )
        )
        return {"mail_id": str(mail_id)}


async def advance(kernel: Any, limit: int, now: datetime | None = None) -> int:
    """Advance up to ``limit`` runs of the tenant due at ``now`` (default: the current time) in
    this transaction; how many."""
    db = kernel.db
    now = now or datetime.now(UTC)
    query = (
        select(AutomationRun)
        .join(Automation, Automation.id == AutomationRun.automation_id)
        .where(
            AutomationRun.status == RUNNING,
            AutomationRun.next_run_at <= now,
            Automation.status == ACTIVE,
        )
        .order_by(AutomationRun.next_run_at, AutomationRun.id)
        .limit(limit)
    )
    if dialect_name(db) == "postgresql":
        query = query.with_for_update(of=AutomationRun, skip_locked=True)
    runs = list(await db.scalars(query))
    runner = _Runner(kernel, now)
    for run in runs:
        await runner.advance(run)
    await db.flush()
    return len(runs)


async def _advance_and_chain(kernel: Any) -> None:
    settings: MarketingSettings = kernel.plugin_settings
    done = await advance(kernel, settings.automation_batch)
    if done >= settings.automation_batch:
        kernel.db.info[KICK] = True  # more may be due: hand on to another run
    await kick(kernel)


async def automation_advance(kernel: Any) -> None:
    """Task ``marketing.automation_advance``: advance due runs (queued by an enrolment)."""
    await _advance_and_chain(kernel)


async def automation_tick(kernel: Any) -> None:
    """Every ten minutes, per tenant: advance runs whose wait is over and whose wake-up did not
    (a safety net: a wait queues an advance for its end)."""
    await _advance_and_chain(kernel)


async def count_runs(db: Any, automation_id: uuid.UUID) -> dict[str, int]:
    rows = await db.execute(
        select(AutomationRun.status, func.count())
        .where(AutomationRun.automation_id == automation_id)
        .group_by(AutomationRun.status)
    )
    return {str(status): int(n) for status, n in rows}
