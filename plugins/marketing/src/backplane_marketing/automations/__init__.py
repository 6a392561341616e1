"""Automations: sequences triggered by an event (joined a list, tag added, score crossed, form
submitted, a custom event), with waits, conditions and branches, sending emails and changing
tags or attributes; each contact's progress is a durable row (``marketing_automation_runs``).

For other parts of the plugin (forms): ``await form_submitted(kernel, contact_id, form_id)``
enrols the contact in the tenant's active automations triggered by that form (or by any form)
and queues their first steps in the caller's transaction.
"""

from __future__ import annotations

import uuid
from typing import Any


async def form_submitted(kernel: Any, contact_id: uuid.UUID, form_id: str | None = None) -> int:
    """A form (``form_id``) was submitted by the contact: enrol it; how many runs began."""
    return await fire(kernel, contact_id, "form_submitted", form_id)


async def fire(kernel: Any, contact_id: uuid.UUID, trigger_type: str, key: str | None) -> int:
    """Enrol the contact in the active automations of this trigger (``list_joined`` with a
    list id, ``tag_added`` with a tag, ``form_submitted`` with a form id, ``event`` with an
    event type) and queue their first steps in the caller's transaction."""
    from backplane_marketing.automations.engine import enrol, kick

    entered = await enrol(kernel.db, contact_id, trigger_type, key)
    await kick(kernel)
    return entered


__all__ = ["fire", "form_submitted"]
