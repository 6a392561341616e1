"""The automation definition: a trigger and a list of steps (msgspec tagged unions, decoded
from the request body: a malformed shape is a 400 naming its path), then checked against the
tenant's data (``check_definition``: a 422 naming the step and the problem).

Steps run in order; a step goes to ``next`` (a step id, or ``"end"``) when given, else to the
step after it. ``condition`` goes to ``then`` when its filter matches the contact and to
``else`` otherwise; ``branch`` goes to the ``next`` of the first case whose filter matches, or
to ``default``. Every jump goes *forward* (to a later step), so a run ends after at most as
many steps as the definition has: no loop, however the definition is written. Filters are the
segment filter language (compiled to SQL, evaluated for the one contact).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

from backplane_marketing.errors import MarketingError

END = "end"
StepId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Target = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
MAX_WAIT_SECONDS = 366 * 24 * 3600


class ListJoined(msgspec.Struct, tag="list_joined", forbid_unknown_fields=True, kw_only=True):
    list_id: uuid.UUID


class TagAdded(msgspec.Struct, tag="tag_added", forbid_unknown_fields=True, kw_only=True):
    tag: Tag


class ScoreCrossed(msgspec.Struct, tag="score_crossed", forbid_unknown_fields=True, kw_only=True):
    threshold: Annotated[float, msgspec.Meta(ge=0, le=100)]
    """Fires when a contact's lead score goes from below ``threshold`` to at least it."""


class FormSubmitted(msgspec.Struct, tag="form_submitted", forbid_unknown_fields=True, kw_only=True):
    form_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """None: any form."""


class CustomEvent(msgspec.Struct, tag="event", forbid_unknown_fields=True, kw_only=True):
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """The ``type`` of an event posted to ``POST /api/marketing/events`` (or to a contact's
    timeline)."""


Trigger = ListJoined | TagAdded | ScoreCrossed | FormSubmitted | CustomEvent


class _Step(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: StepId
    next: Target | None = None


class Wait(_Step, tag="wait"):
    seconds: Annotated[int, msgspec.Meta(ge=0)] = 0
    minutes: Annotated[int, msgspec.Meta(ge=0)] = 0
    hours: Annotated[int, msgspec.Meta(ge=0)] = 0
    days: Annotated[int, msgspec.Meta(ge=0)] = 0

    @property
    def total_seconds(self) -> int:
        return self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * self.days


class Condition(_Step, tag="condition"):
    filter: dict[str, Any]
    then: Target | None = None
    """Where a matching contact goes (default: the next step)."""
    otherwise: Target | None = msgspec.field(default=None, name="else")
    """Where another contact goes (default: the next step)."""


class Case(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    filter: dict[str, Any]
    next: Target


class Branch(_Step, tag="branch"):
    cases: Annotated[list[Case], msgspec.Meta(min_length=1, max_length=20)]
    default: Target | None = None


class SendEmail(_Step, tag="send_email"):
    template_id: uuid.UUID


class AddTag(_Step, tag="add_tag"):
    tag: Tag


class RemoveTag(_Step, tag="remove_tag"):
    tag: Tag


class SetAttribute(_Step, tag="set_attribute"):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    value: Any = None
    """None removes the attribute."""


Step = Wait | Condition | Branch | SendEmail | AddTag | RemoveTag | SetAttribute


class AutomationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    trigger: Trigger
    steps: Annotated[list[Step], msgspec.Meta(min_length=1)]
    allow_reentry: bool = False
    """Whether a contact that finished (or left) the sequence enters again when the trigger
    fires again; never while it is still on its way."""
    status: Literal["draft", "active"] = "draft"


class Definition(msgspec.Struct, kw_only=True):
    """What is stored (and what runs read back)."""

    trigger: Trigger
    steps: list[Step]


def kind_of(step: Step) -> str:
    return str(type(step).__struct_config__.tag)


def trigger_key(trigger: Trigger) -> tuple[str, str | None]:
    """The trigger's type and the key enrolment matches on."""
    kind = str(type(trigger).__struct_config__.tag)
    if isinstance(trigger, ListJoined):
        return kind, str(trigger.list_id)
    if isinstance(trigger, TagAdded):
        return kind, trigger.tag
    if isinstance(trigger, ScoreCrossed):
        return kind, None
    if isinstance(trigger, FormSubmitted):
        return kind, trigger.form_id
    return kind, trigger.event


def successors(step: Step) -> list[str | None]:
    """Every target a step may go to (None: the step after it)."""
    if isinstance(step, Condition):
        return [step.then, step.otherwise]
    if isinstance(step, Branch):
        return [*(case.next for case in step.cases), step.default]
    return [step.next]


def filters_of(step: Step) -> list[dict[str, Any]]:
    if isinstance(step, Condition):
        return [step.filter]
    if isinstance(step, Branch):
        return [case.filter for case in step.cases]
    return []


def check_shape(steps: list[Step], max_steps: int) -> None:
    """Ids unique, every jump to a later step or ``end``, waits within a year (422)."""
    if len(steps) > max_steps:
        raise MarketingError(
            f"an automation has at most {max_steps} steps (setting max_automation_steps)", 422
        )
    position: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id == END:
            raise MarketingError(f"step {index}: the id {END!r} is reserved", 422)
        if step.id in position:
            raise MarketingError(f"step {index}: the id {step.id!r} is used twice", 422)
        position[step.id] = index
    for index, step in enumerate(steps):
        for target in successors(step):
            if target is None or target == END:
                continue
            if target not in position:
                raise MarketingError(f"step {step.id!r}: no step {target!r} to go to", 422)
            if position[target] <= index:
                raise MarketingError(
                    f"step {step.id!r}: goes back to {target!r}; steps only go forward "
                    "(to a later step or 'end')",
                    422,
                )
        if isinstance(step, Wait) and not 0 < step.total_seconds <= MAX_WAIT_SECONDS:
            raise MarketingError(
                f"step {step.id!r}: a wait lasts more than 0 seconds and at most 366 days", 422
            )


def resolve(steps: list[Step], index: int, target: str | None) -> str | None:
    """The id of the step ``target`` names from step ``index`` (None: the run ends)."""
    if target == END:
        return None
    if target is not None:
        return target
    return steps[index + 1].id if index + 1 < len(steps) else None


def decode_definition(raw: dict[str, Any]) -> Definition:
    return msgspec.convert(raw, Definition)
