"""Request and response bodies of the webhooks API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Description = Annotated[str, msgspec.Meta(max_length=200)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
EventTypes = Annotated[list[str], msgspec.Meta(max_length=16)]


class EndpointIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    """An https URL resolving only to public addresses."""
    event_types: EventTypes = msgspec.field(default_factory=list)
    """Event types to receive; empty means all."""
    description: Description = ""
    enabled: bool = True


class EndpointPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; those left out (or null) keep their value."""

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class EndpointOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_at: datetime
    secret_rotated_at: datetime | None


class EndpointCreated(EndpointOut, kw_only=True):
    secret: str
    """The signing secret, shown this once; store it with the receiver."""


class SecretOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    secret: str
    """The new signing secret, shown this once; the old one stops signing at once."""


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    """``pending`` (next attempt at ``next_attempt_at``), ``succeeded`` or ``failed``."""
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_response_body: str | None
    created_at: datetime
    completed_at: datetime | None
