"""The plugin's tables under the data-rights hooks (``backplane tenants export``, a person's
export and erasure). A contact is a data subject found by email: their export holds their
contact row, tags, subscriptions, timeline, static segment memberships, lead score, campaign
recipients, A/B assignments, link clicks, suppression and form submissions (found by
email: a pending sign-up has no contact yet); erasure deletes the submissions and the contact,
and the database cascades to everything that names it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from backplane_marketing.abtests.models import AB_TABLES, AbAssignment
from backplane_marketing.automations.models import (
    AUTOMATION_TABLES,
    AutomationMessage,
    AutomationRun,
    AutomationStepLog,
)
from backplane_marketing.campaigns.models import (
    CAMPAIGN_TABLES,
    LinkClick,
    Recipient,
    Suppression,
)
from backplane_marketing.emails import InvalidEmailError, normalise_email
from backplane_marketing.forms.models import FORM_TABLES, FormSubmission
from backplane_marketing.models import (
    TABLES,
    Contact,
    ContactEvent,
    ContactTag,
    SegmentMember,
    Subscription,
)
from backplane_marketing.scoring.models import ContactScore, ScoreRule, ScoringSpec

SCORING_TABLES = (ScoreRule, ContactScore, ScoringSpec)
PER_CONTACT: tuple[Any, ...] = (
    ContactTag,
    Subscription,
    ContactEvent,
    SegmentMember,
    ContactScore,
    LinkClick,
    AbAssignment,
    Recipient,
    Suppression,
    AutomationMessage,
    AutomationRun,
)
"""Rows naming a contact (clicks before the recipients they belong to, automation messages
before their runs; a run's step log goes with it)."""


def _email_of(subject: Any) -> str | None:
    if subject is None or not subject.email:
        return None
    try:
        return normalise_email(subject.email)
    except InvalidEmailError:
        return None


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every row of the tenant; for a person, the rows about their contact (by email)."""
    if subject is None:
        for table in (
            *TABLES,
            *SCORING_TABLES,
            *CAMPAIGN_TABLES,
            *AUTOMATION_TABLES,
            *FORM_TABLES,
            *AB_TABLES,
        ):
            await archive.add_table(table)
        return
    email = _email_of(subject)
    if email is None:
        return
    ids = select(Contact.id).where(Contact.email == email)
    await archive.add_table(Contact, Contact.email == email)
    for table in PER_CONTACT:
        await archive.add_table(table, table.contact_id.in_(ids))
    runs = select(AutomationRun.id).where(AutomationRun.contact_id.in_(ids))
    await archive.add_table(AutomationStepLog, AutomationStepLog.run_id.in_(runs))
    await archive.add_table(FormSubmission, FormSubmission.email == email)


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Delete the person's contact; its tags, subscriptions, timeline and memberships go with it
    (foreign keys ``ON DELETE CASCADE``), counted here for the report."""
    email = _email_of(subject)
    if email is None:
        return {}
    db = kernel.db
    changed: dict[str, int] = {}
    forms: Any = await db.execute(  # pending sign-ups hold the address before any contact does
        delete(FormSubmission)
        .where(FormSubmission.email == email)
        .execution_options(synchronize_session=False)
    )
    if forms.rowcount:
        changed[FormSubmission.__tablename__] = int(forms.rowcount)
    ids = list(await db.scalars(select(Contact.id).where(Contact.email == email)))
    if not ids:
        return changed
    runs = select(AutomationRun.id).where(AutomationRun.contact_id.in_(ids))
    steps: Any = await db.execute(
        delete(AutomationStepLog)
        .where(AutomationStepLog.run_id.in_(runs))
        .execution_options(synchronize_session=False)
    )
    changed[AutomationStepLog.__tablename__] = int(steps.rowcount or 0)
    for table in PER_CONTACT:
        result: Any = await db.execute(
            delete(table)
            .where(table.contact_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        changed[table.__tablename__] = int(result.rowcount or 0)
    result = await db.execute(
        delete(Contact).where(Contact.id.in_(ids)).execution_options(synchronize_session=False)
    )
    changed[Contact.__tablename__] = int(result.rowcount or 0)
    return changed
