"""Request and response bodies of the publisher and review routes (msgspec, unknown fields
refused)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Text200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ApplyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    display_name: Text200
    website: Annotated[str, msgspec.Meta(max_length=500)] = ""
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class KeyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """Base64 of the raw 32-byte Ed25519 public key."""
    proof: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """Base64 signature, by the new key, over the key-proof statement (see the README)."""


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class KeyOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    public_key: str
    fingerprint: str
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None


class PublisherOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    publisher_tenant_id: uuid.UUID
    display_name: str
    website: str
    description: str
    state: str
    applied_at: datetime
    decided_at: datetime | None
    decision_reason: str
    keys: list[KeyOut]
