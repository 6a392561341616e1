"""What the contacts API reads and writes (msgspec structs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

ConsentStatus = Literal["granted", "withdrawn", "unknown"]
SubscriptionStatus = Literal["subscribed", "unsubscribed"]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\s,|][^,|]*$")]
Name = Annotated[str, msgspec.Meta(max_length=200)]


class ConsentIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A consent decision and where it came from (a form, an import, a phone call)."""

    status: ConsentStatus
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ConsentOut(msgspec.Struct, kw_only=True):
    status: str
    source: str
    at: datetime | None


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    list_id: uuid.UUID
    status: SubscriptionStatus = "subscribed"


class SubscriptionOut(msgspec.Struct, kw_only=True):
    list_id: uuid.UUID
    status: str
    updated_at: datetime


class ContactIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    name: Name = ""
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[Tag] = msgspec.field(default_factory=list)
    consent: ConsentIn | None = None
    lists: list[SubscriptionIn] = msgspec.field(default_factory=list)


class ContactPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only what is sent changes; ``attributes`` merge (a null value removes the key);
    ``tags`` replaces the set; ``lists`` sets the status on each list named."""

    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)] | None = None
    name: Name | None = None
    attributes: dict[str, Any] | None = None
    tags: list[Tag] | None = None
    consent: ConsentIn | None = None
    lists: list[SubscriptionIn] | None = None


class ContactOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str
    name: str
    attributes: dict[str, Any]
    tags: list[str]
    consent: ConsentOut
    lists: list[SubscriptionOut]
    created_at: datetime
    updated_at: datetime


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A timeline entry posted by API (a custom event: ``webinar_attended``, ``purchased``)."""

    type: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    occurred_at: datetime | None = None


class EventOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    type: str
    data: dict[str, Any]
    occurred_at: datetime


class MergeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The duplicate folded into the contact of the URL, then deleted."""

    duplicate_id: uuid.UUID


class ContactPage(msgspec.Struct, kw_only=True):
    """A page of contacts; ``next`` is the ``after`` of the next page (None: the last page)."""

    items: list[ContactOut]
    next: uuid.UUID | None
