"""Federation's documents: the signed catalog (one format both sides share, decoded strictly
on the subscribing side) and the bodies of the federation routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from backplane_marketplace.schemas import ModelName, Version

CATALOG_FORMAT: Final = "backplane.marketplace.catalog.v1"

Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Key = Annotated[str, msgspec.Meta(min_length=44, max_length=44)]


class CatalogVersion(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An approved version: its artifact's digest and size, the publisher's signature over
    the digest and the key that made it, the model's signature, and where the artifact is
    (a path on the serving deployment: subscribers fetch it there, from no other host)."""

    version: Version
    sha256: Sha256
    size_bytes: Annotated[int, msgspec.Meta(ge=1)]
    signature: Annotated[str, msgspec.Meta(max_length=100)]
    public_key: Key
    key_fingerprint: Sha256
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    changelog: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    artifact: Annotated[str, msgspec.Meta(max_length=300)]


class CatalogPublisher(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: uuid.UUID
    display_name: Annotated[str, msgspec.Meta(max_length=200)]
    website: Annotated[str, msgspec.Meta(max_length=500)] = ""


class CatalogListing(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: uuid.UUID
    slug: Annotated[str, msgspec.Meta(max_length=100)]
    title: Annotated[str, msgspec.Meta(max_length=200)]
    task: Annotated[str, msgspec.Meta(max_length=100)]
    license: Annotated[str, msgspec.Meta(max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=8000)] = ""
    intended_use: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    limitations: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    tags: Annotated[list[Annotated[str, msgspec.Meta(max_length=50)]], msgspec.Meta(max_length=20)]
    publisher: CatalogPublisher
    versions: Annotated[list[CatalogVersion], msgspec.Meta(min_length=1, max_length=1000)]


class Catalog(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What ``GET /api/marketplace/federation/catalog`` serves, signed as its raw bytes."""

    format: Literal["backplane.marketplace.catalog.v1"]
    deployment: Annotated[str, msgspec.Meta(max_length=200)]
    key_fingerprint: Sha256
    issued_at: datetime
    listings: list[CatalogListing]


class CatalogKeyOut(msgspec.Struct, kw_only=True):
    """This deployment's catalog public key: what a subscribing operator pins."""

    public_key: str
    fingerprint: str


class FederationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    federated: bool


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[
        str, msgspec.Meta(max_length=500, pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?$")
    ]
    """The other deployment's base URL (``https://market.example.org``); its catalog is read
    at ``<url>/api/marketplace/federation/catalog``."""
    public_key: Key
    """Its catalog public key (``backplane marketplace federation key`` there), pinned."""


class SubscriptionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    url: str
    catalog_key: str
    key_fingerprint: str
    deployment: str
    issued_at: datetime
    refreshed_at: datetime
    created_at: datetime
    listings: int


class FederatedVersionOut(msgspec.Struct, kw_only=True):
    version: str
    sha256: str
    size_bytes: int
    key_fingerprint: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    changelog: str


class FederatedListingOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    subscription_id: uuid.UUID
    deployment: str
    slug: str
    title: str
    task: str
    license: str
    description: str
    intended_use: str
    limitations: str
    tags: list[str]
    publisher: dict[str, Any]
    versions: list[FederatedVersionOut]


class FederatedInstallIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    listing_id: uuid.UUID
    """A federated listing's id here (``GET /api/marketplace/federation/listings``)."""
    name: ModelName
    version: Version | None = None
    """One of its versions; the latest in the catalog when left out."""


class FederatedInstallOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    listing_id: uuid.UUID
    slug: str
    version: str
    sha256: str
    model_name: str
    subscription_url: str
    installed_at: datetime
