"""Request and response bodies of the publisher and review routes (msgspec, unknown fields
refused)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

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


Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{1,99}$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")]


class ListingIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A model card: what the model is for and what it is not."""

    slug: Slug
    title: Text200
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    license: Text200
    description: Annotated[str, msgspec.Meta(max_length=8000)] = ""
    intended_use: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    limitations: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    downloadable: bool = False
    federated: bool = False
    """Serve the listing's approved versions in this deployment's signed catalog, for other
    deployments to install (free there, or licensed out of band)."""
    tags: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=50)]], msgspec.Meta(max_length=20)
    ] = []
    trial_units: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0
    """Free requests or rows (each version's billing unit) per consumer tenant before charges
    start; fixed with the listing."""


class ExampleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A request (input name -> nested lists) and the outputs it must give (output name ->
    nested lists; outputs left out are not compared), numbers within ``tolerance``."""

    inputs: dict[str, Any]
    outputs: Annotated[dict[str, Any], msgspec.Meta(min_length=1)]
    tolerance: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1e-5


PriceModel = Literal["free", "per_request", "per_row"]


class PricingIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A version's tariff: free, or ``unit_price`` minor units of the deployment's currency per
    successful V2 request or per row (batch entry) of it. Fixed once the version exists."""

    model: PriceModel = "free"
    unit_price: Annotated[int, msgspec.Meta(ge=0)] = 0


class PricingOut(msgspec.Struct, kw_only=True):
    model: str
    unit_price: int
    currency: str


class VersionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Version
    artifact: Annotated[str, msgspec.Meta(min_length=1)]
    """The ONNX file, base64."""
    signature: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    """Base64 Ed25519 signature over the artifact statement (see the README), by an active key."""
    examples: Annotated[list[ExampleIn], msgspec.Meta(min_length=1)]
    claimed_metrics: dict[str, float] = {}
    changelog: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    pricing: PricingIn = PricingIn()


class VersionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    listing_id: uuid.UUID
    version: str
    sha256: str
    size_bytes: int
    signing_key_fingerprint: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    claimed_metrics: dict[str, float]
    checks: dict[str, Any]
    changelog: str
    pricing: PricingOut
    state: str
    review_reason: str
    submitted_at: datetime
    decided_at: datetime | None
    deprecated_at: datetime | None = None
    """Deprecated from this instant (no new installs after it); None if not deprecated."""
    deprecation_note: str = ""


class RatingOut(msgspec.Struct, kw_only=True):
    average: float | None
    """Mean of the tenants' ratings (1..5), two decimals; None before the first."""
    count: int


class ListingOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    publisher_id: uuid.UUID
    slug: str
    title: str
    task: str
    license: str
    description: str
    intended_use: str
    limitations: str
    downloadable: bool
    federated: bool
    tags: list[str]
    installs: int
    """Tenants that have it installed now."""
    created_at: datetime
    trial_units: int = 0
    """Free requests or rows per consumer tenant before charges start."""
    rating: RatingOut = msgspec.field(default_factory=lambda: RatingOut(average=None, count=0))
    versions: list[VersionOut]


ModelName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class InstallIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    listing_id: uuid.UUID
    name: ModelName
    """What the tenant calls it: ``POST /v2/models/{name}/infer``."""
    version: Version | None = None
    """A version of the listing (approved); the latest approved one when left out."""
    mode: Literal["pinned", "follow"] = "pinned"
    """``follow``: moved to each newly approved version after a notice (names no version)."""


class InstallOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    listing_id: uuid.UUID
    listing_slug: str
    version: str
    model_name: str
    pricing: PricingOut
    """The tariff the install accepted (the version's, fixed)."""
    installed_at: datetime
    deprecated_at: datetime | None = None
    """When the installed version is (or will be) deprecated; calls keep working after it."""
    notice: str | None = None
    """What the tenant should know about the install (a deprecation), or None."""
    mode: str = "pinned"
    pending_version: str | None = None
    """A following install's announced next version,"""
    upgrade_at: datetime | None = None
    """and when it moves there (``POST .../upgrade`` moves it at once)."""


class NoticeOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    install_id: uuid.UUID | None
    listing_id: uuid.UUID
    kind: str
    """``upgrade_pending`` or ``upgraded``."""
    version: str
    message: str
    effective_at: datetime
    created_at: datetime


class StatementListingOut(msgspec.Struct, kw_only=True):
    """One listing's aggregate use in the period: never which consumers."""

    listing_id: uuid.UUID
    slug: str
    requests: int
    rows: int
    consumers: int
    """How many tenants used it (a count)."""
    gross: int


class StatementOut(msgspec.Struct, kw_only=True):
    """Amounts in minor units of ``currency``: ``net = gross - platform_share``."""

    id: uuid.UUID
    period_start: datetime
    period_end: datetime
    currency: str
    gross: int
    platform_share_percent: int
    platform_share: int
    net: int
    listings: list[StatementListingOut]
    payout_provider: str
    payout_reference: str | None
    created_at: datetime


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    body: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reply: Annotated[str, msgspec.Meta(max_length=4000)]
    """The publisher's answer; "" takes it back."""


class ReviewOut(msgspec.Struct, kw_only=True):
    """A review as every reader sees it: no tenant or user names its author."""

    id: uuid.UUID
    listing_id: uuid.UUID
    rating: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    reply: str
    replied_at: datetime | None
    mine: bool
    """Whether the caller's tenant wrote it."""


class DeprecateIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    as_of: datetime
    """From when (timezone-aware; the past means at once)."""
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    """What consumers should do instead (shown on their installs)."""
