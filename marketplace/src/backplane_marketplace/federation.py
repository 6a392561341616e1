"""Federation: this deployment serves its federated listings as a signed catalog, and
subscribes to other deployments' catalogs, whose listings its tenants install.

**Serving.** The catalog lists every listing whose publisher opted in (``federated``) with
its approved versions signed by a key that is not revoked: the model card, each artifact's
SHA-256 and size, the publisher's Ed25519 signature over it with the public key that made it,
and the artifact's path. The document is signed as its raw bytes with the deployment's
catalog key (:meth:`backplane.Kernel.deployment_key`, purpose ``catalog``), the signature in
the ``Backplane-Catalog-Signature`` header, over :data:`CATALOG_DOMAIN` and the bytes.
Catalog, key and artifacts are public routes, deliberately: what is in the catalog is what
the publishers chose to distribute, integrity rests on the signatures (never on the channel),
and an artifact is served only if it is an approved, federated version's.

**Subscribing.** A platform operator adds a subscription: a base URL and the catalog public
key pinned out of band. The catalog is fetched (time and size capped), its signature checked
with the pinned key before it is parsed, then decoded strictly; every version's publisher
signature is checked too, and a catalog older than the last one accepted is refused. Only
then are its listings stored (replacing the previous copy). Installing fetches the artifact
from the subscription's own host, checks its size, its SHA-256 against the catalog's and the
publisher's signature again, then the kernel validates and stores it and exposes it as the
tenant's model (source ``federation``): it runs here, through V2. Any failure refuses the
whole step (502 naming it; 504 for a timeout) and stores nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from cryptography.exceptions import InvalidSignature
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import ArtifactMissingError, ArtifactReport, Kernel, ModelRejected, RegistryError
from backplane_marketplace import signing
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.federation_models import (
    FederatedInstall,
    FederatedListing,
    Subscription,
)
from backplane_marketplace.federation_schemas import (
    CATALOG_FORMAT,
    Catalog,
    CatalogKeyOut,
    CatalogListing,
    CatalogPublisher,
    CatalogVersion,
    FederatedInstallIn,
    FederatedInstallOut,
    FederatedListingOut,
    FederatedVersionOut,
    SubscriptionIn,
    SubscriptionOut,
)
from backplane_marketplace.models import Listing, ListingVersion, Publisher, SigningKey
from backplane_marketplace.settings import MarketplaceSettings

CATALOG_DOMAIN = b"backplane.marketplace.catalog.v1\n"
SIGNATURE_HEADER = "Backplane-Catalog-Signature"
CATALOG_PATH = "/api/marketplace/federation/catalog"
ARTIFACT_PATH = "/api/marketplace/federation/artifacts/"
SOURCE = "federation"
"""The source federated installs are exposed under (no marketplace meters: unbilled)."""


# -- serving ------------------------------------------------------------------------------------
def catalog_key(kernel: Kernel) -> CatalogKeyOut:
    key = kernel.deployment_key("catalog")
    return CatalogKeyOut(public_key=key.public_key, fingerprint=signing.fingerprint(key.public_key))


def _served_versions() -> Any:
    """Approved versions of federated listings signed by a key that is not revoked."""
    return (
        select(ListingVersion, SigningKey.public_key, SigningKey.fingerprint)
        .join(Listing, Listing.id == ListingVersion.listing_id)
        .join(SigningKey, SigningKey.id == ListingVersion.signing_key_id)
        .where(
            Listing.federated.is_(True),
            ListingVersion.state == "approved",
            SigningKey.revoked_at.is_(None),
        )
    )


async def build_catalog(kernel: Kernel, settings: MarketplaceSettings) -> tuple[bytes, str]:
    """The catalog document's bytes and their signature (base64)."""
    db = kernel.db
    rows = (
        await db.execute(
            _served_versions().order_by(ListingVersion.submitted_at, ListingVersion.id)
        )
    ).tuples()
    by_listing: dict[uuid.UUID, list[CatalogVersion]] = {}
    for version, public_key, fingerprint in rows:
        by_listing.setdefault(version.listing_id, []).append(
            CatalogVersion(
                version=version.version,
                sha256=version.sha256,
                size_bytes=version.size_bytes,
                signature=version.signature,
                public_key=public_key,
                key_fingerprint=fingerprint,
                inputs=version.inputs,
                outputs=version.outputs,
                changelog=version.changelog,
                artifact=ARTIFACT_PATH + version.sha256,
            )
        )
    listings: list[CatalogListing] = []
    if by_listing:
        found = await db.execute(
            select(Listing, Publisher)
            .join(Publisher, Publisher.id == Listing.publisher_id)
            .where(Listing.id.in_(list(by_listing)), Publisher.state == "approved")
            .order_by(Listing.created_at, Listing.id)
            .limit(settings.federation_max_listings)
        )
        for listing, publisher in found.tuples():
            listings.append(
                CatalogListing(
                    id=listing.id,
                    slug=listing.slug,
                    title=listing.title,
                    task=listing.task,
                    license=listing.license,
                    description=listing.description,
                    intended_use=listing.intended_use,
                    limitations=listing.limitations,
                    tags=list(listing.tags or []),
                    publisher=CatalogPublisher(
                        id=publisher.id,
                        display_name=publisher.display_name,
                        website=publisher.website,
                    ),
                    versions=by_listing[listing.id],
                )
            )
    key = kernel.deployment_key("catalog")
    document = Catalog(
        format=CATALOG_FORMAT,
        deployment=settings.federation_name,
        key_fingerprint=signing.fingerprint(key.public_key),
        issued_at=datetime.now(UTC),
        listings=listings,
    )
    body = msgspec.json.encode(document)
    return body, key.sign(CATALOG_DOMAIN + body)


async def served_artifact(kernel: Kernel, sha256: str) -> bytes:
    """The bytes of ``sha256`` if the catalog names it, else 404 (whatever else is stored)."""
    if not signing.SHA256_HEX.match(sha256):
        raise MarketplaceError("an artifact is named by 64 lower-case hex digits", 404)
    found = await kernel.db.scalar(
        _served_versions().where(ListingVersion.sha256 == sha256).limit(1)
    )
    if found is None:
        raise MarketplaceError(f"no federated artifact {sha256}", 404)
    try:
        return await kernel.models.artifact_bytes(sha256)
    except ArtifactMissingError:
        raise MarketplaceError(f"artifact {sha256} is not stored intact here", 404) from None


# -- fetching -----------------------------------------------------------------------------------
class _TooLargeError(Exception):
    pass


async def fetch(
    url: str, cap: int, settings: MarketplaceSettings, what: str
) -> tuple[bytes, httpx.Headers]:
    """GET ``url``: at most ``cap`` bytes within ``federation_timeout_s`` in all, no redirects,
    no proxies from the environment; 502 (504 for the time limit) naming ``what`` otherwise."""
    timeout = settings.federation_timeout_s
    try:
        async with asyncio.timeout(timeout):
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http,
                http.stream("GET", url) as answer,
            ):
                if answer.status_code != 200:
                    raise MarketplaceError(
                        f"{what}: {url} answered {answer.status_code}, not 200", 502
                    )
                declared = answer.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _TooLargeError
                chunks: list[bytes] = []
                total = 0
                async for chunk in answer.aiter_bytes():  # decoded: the cap holds for gzip too
                    total += len(chunk)
                    if total > cap:
                        raise _TooLargeError
                    chunks.append(chunk)
                return b"".join(chunks), answer.headers
    except _TooLargeError:
        raise MarketplaceError(f"{what}: larger than the {cap} bytes allowed", 502) from None
    except TimeoutError:
        raise MarketplaceError(
            f"{what}: {url} took longer than {timeout:g} s (setting federation_timeout_s)", 504
        ) from None
    except httpx.HTTPError as exc:
        raise MarketplaceError(
            f"{what}: could not fetch {url}: {exc or type(exc).__name__}", 502
        ) from None


def _check_signature(key_text: str, signature: str | None, body: bytes) -> None:
    if not signature:
        raise MarketplaceError(f"the catalog carries no {SIGNATURE_HEADER} header", 502)
    try:
        raw = base64.b64decode(signature, validate=True)
        signing.public_key(key_text).verify(raw, CATALOG_DOMAIN + body)
    except (binascii.Error, ValueError, InvalidSignature):
        raise MarketplaceError(
            "the catalog does not verify with the pinned catalog key (changed in transit, or "
            "signed by another deployment): nothing stored",
            502,
        ) from None


def _check_publishers(catalog: Catalog) -> None:
    for listing in catalog.listings:
        for version in listing.versions:
            try:
                if signing.fingerprint(version.public_key) != version.key_fingerprint:
                    raise signing.SignatureError("the key's fingerprint does not match it")
                signing.verify(
                    version.public_key,
                    version.signature,
                    signing.artifact_message(version.sha256),
                )
            except signing.SignatureError as exc:
                raise MarketplaceError(
                    f"the catalog's {listing.slug} {version.version}: the publisher's "
                    f"signature is refused ({exc}): nothing stored",
                    502,
                ) from None


async def fetch_catalog(base_url: str, key_text: str, settings: MarketplaceSettings) -> Catalog:
    """The catalog at ``base_url``, verified with ``key_text`` (then decoded and its
    publishers' signatures checked)."""
    body, headers = await fetch(
        base_url + CATALOG_PATH, settings.federation_max_catalog_bytes, settings, "the catalog"
    )
    _check_signature(key_text, headers.get(SIGNATURE_HEADER), body)
    try:
        catalog = msgspec.json.decode(body, type=Catalog)
    except msgspec.ValidationError as exc:
        raise MarketplaceError(f"the catalog is malformed: {exc}", 502) from None
    if catalog.key_fingerprint != signing.fingerprint(key_text):
        raise MarketplaceError("the catalog names another catalog key than the pinned one", 502)
    if len(catalog.listings) > settings.federation_max_listings:
        raise MarketplaceError(
            f"the catalog has {len(catalog.listings)} listings, more than "
            f"{settings.federation_max_listings} (setting federation_max_listings)",
            502,
        )
    _check_publishers(catalog)
    return catalog


# -- subscriptions ------------------------------------------------------------------------------
def _base(url: str) -> str:
    return url.rstrip("/")


async def subscription_out(db: AsyncSession, row: Subscription) -> SubscriptionOut:
    count = await db.scalar(
        select(func.count())
        .select_from(FederatedListing)
        .where(FederatedListing.subscription_id == row.id)
    )
    return SubscriptionOut(
        id=row.id,
        url=row.url,
        catalog_key=row.catalog_key,
        key_fingerprint=row.key_fingerprint,
        deployment=row.deployment,
        issued_at=row.issued_at,
        refreshed_at=row.refreshed_at,
        created_at=row.created_at,
        listings=int(count or 0),
    )


async def _store_listings(db: AsyncSession, row: Subscription, catalog: Catalog) -> None:
    existing = {
        item.remote_id: item
        for item in await db.scalars(
            select(FederatedListing).where(FederatedListing.subscription_id == row.id)
        )
    }
    seen = set()
    for listing in catalog.listings:
        seen.add(listing.id)
        fields: dict[str, Any] = {
            "slug": listing.slug,
            "title": listing.title,
            "task": listing.task,
            "license": listing.license,
            "description": listing.description,
            "intended_use": listing.intended_use,
            "limitations": listing.limitations,
            "tags": list(listing.tags),
            "publisher": msgspec.to_builtins(listing.publisher),
            "versions": msgspec.to_builtins(listing.versions),
        }
        item = existing.get(listing.id)
        if item is None:
            db.add(FederatedListing(subscription_id=row.id, remote_id=listing.id, **fields))
        else:
            for name, value in fields.items():
                setattr(item, name, value)
    gone = [remote for remote in existing if remote not in seen]
    if gone:
        await db.execute(
            delete(FederatedListing).where(
                FederatedListing.subscription_id == row.id, FederatedListing.remote_id.in_(gone)
            )
        )
    await db.flush()


async def subscribe(
    db: AsyncSession, data: SubscriptionIn, settings: MarketplaceSettings, by: uuid.UUID | None
) -> Subscription:
    """Fetch and verify the catalog, then store the subscription and its listings (409 for a
    URL subscribed already; nothing stored if the catalog is refused)."""
    url = _base(data.url)
    try:
        fingerprint = signing.fingerprint(data.public_key)
    except signing.SignatureError as exc:
        raise MarketplaceError(f"public_key: {exc}", 422) from None
    if await db.scalar(select(Subscription.id).where(Subscription.url == url)):
        raise MarketplaceError(f"{url} is subscribed already", 409)
    catalog = await fetch_catalog(url, data.public_key, settings)
    now = datetime.now(UTC)
    row = Subscription(
        url=url,
        catalog_key=data.public_key,
        key_fingerprint=fingerprint,
        deployment=catalog.deployment,
        created_by=by,
        created_at=now,
        issued_at=catalog.issued_at,
        refreshed_at=now,
    )
    try:
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError:
        raise MarketplaceError(f"{url} is subscribed already", 409) from None
    await _store_listings(db, row, catalog)
    return row


async def subscription(db: AsyncSession, subscription_id: uuid.UUID) -> Subscription:
    row = await db.get(Subscription, subscription_id)
    if row is None:
        raise MarketplaceError(f"no subscription {subscription_id}", 404)
    return row


async def refresh(
    db: AsyncSession, subscription_id: uuid.UUID, settings: MarketplaceSettings
) -> Subscription:
    """Fetch the catalog again: verified as on subscribing, and not older than the last."""
    row = await subscription(db, subscription_id)
    catalog = await fetch_catalog(row.url, row.catalog_key, settings)
    issued = catalog.issued_at
    last = row.issued_at if row.issued_at.tzinfo else row.issued_at.replace(tzinfo=UTC)
    if issued < last:
        raise MarketplaceError(
            f"the catalog was issued at {issued.isoformat()}, before the one accepted last "
            f"({last.isoformat()}): a replayed catalog is refused",
            502,
        )
    row.issued_at = issued
    row.refreshed_at = datetime.now(UTC)
    row.deployment = catalog.deployment
    await _store_listings(db, row, catalog)
    return row


async def unsubscribe(db: AsyncSession, subscription_id: uuid.UUID) -> Subscription:
    """Forget the subscription and its listings; installs made from it stay (they run here)."""
    row = await subscription(db, subscription_id)
    await db.delete(row)
    await db.flush()
    return row


# -- browsing and installing --------------------------------------------------------------------
def listing_out(item: FederatedListing, deployment: str) -> FederatedListingOut:
    return FederatedListingOut(
        id=item.id,
        subscription_id=item.subscription_id,
        deployment=deployment,
        slug=item.slug,
        title=item.title,
        task=item.task,
        license=item.license,
        description=item.description,
        intended_use=item.intended_use,
        limitations=item.limitations,
        tags=list(item.tags),
        publisher=dict(item.publisher),
        versions=[
            FederatedVersionOut(
                version=v["version"],
                sha256=v["sha256"],
                size_bytes=v["size_bytes"],
                key_fingerprint=v["key_fingerprint"],
                inputs=v["inputs"],
                outputs=v["outputs"],
                changelog=v.get("changelog", ""),
            )
            for v in item.versions
        ],
    )


def _install_out(row: FederatedInstall) -> FederatedInstallOut:
    return FederatedInstallOut(
        id=row.id,
        listing_id=row.federated_listing_id,
        slug=row.slug,
        version=row.version,
        sha256=row.sha256,
        model_name=row.model_name,
        subscription_url=row.subscription_url,
        installed_at=row.installed_at,
    )


async def install(
    kernel: Kernel,
    data: FederatedInstallIn,
    settings: MarketplaceSettings,
    user_id: uuid.UUID | None,
) -> FederatedInstallOut:
    db = kernel.db
    item = await db.get(FederatedListing, data.listing_id)
    if item is None:
        raise MarketplaceError(f"no federated listing {data.listing_id}", 404)
    sub = await subscription(db, item.subscription_id)
    if await db.scalar(
        select(FederatedInstall.id).where(FederatedInstall.federated_listing_id == item.id)
    ):
        raise MarketplaceError(f"listing {item.slug!r} is installed already", 409)
    versions = item.versions
    if data.version is not None:
        versions = [v for v in versions if v["version"] == data.version]
    if not versions:
        raise MarketplaceError(f"listing {item.slug!r} has no version {data.version!r}", 404)
    version = CatalogVersion(**versions[-1])
    cap = min(settings.federation_max_artifact_bytes, version.size_bytes)
    data_bytes, _ = await fetch(
        sub.url + ARTIFACT_PATH + version.sha256,
        cap,
        settings,
        f"the artifact of {item.slug} {version.version}",
    )
    digest = hashlib.sha256(data_bytes).hexdigest()
    if digest != version.sha256 or len(data_bytes) != version.size_bytes:
        raise MarketplaceError(
            f"the artifact of {item.slug} {version.version} is not the one the catalog names "
            "(changed in transit): nothing installed",
            502,
        )
    try:
        signing.verify(version.public_key, version.signature, signing.artifact_message(digest))
    except signing.SignatureError as exc:
        raise MarketplaceError(
            f"the publisher's signature over the artifact is refused ({exc})", 502
        ) from None
    try:
        report: ArtifactReport = await kernel.models.check_artifact(data_bytes)
    except ModelRejected as exc:
        raise MarketplaceError(
            f"the artifact failed this deployment's validation: {exc}", exc.status_code
        ) from None
    try:
        await kernel.models.expose_artifact(
            data.name,
            report,
            source=SOURCE,
            version=version.version,
            description=f"federated: {item.slug} {version.version} from {sub.url}",
        )
    except RegistryError as exc:
        raise MarketplaceError(str(exc), exc.status_code) from None
    made = FederatedInstall(
        federated_listing_id=item.id,
        subscription_url=sub.url,
        slug=item.slug,
        version=version.version,
        sha256=digest,
        publisher_key=version.public_key,
        model_name=data.name,
        installed_by=user_id,
        installed_at=datetime.now(UTC),
    )
    try:
        async with db.begin_nested():
            db.add(made)
            await db.flush()
    except IntegrityError:
        raise MarketplaceError(f"listing {item.slug!r} is installed already", 409) from None
    return _install_out(made)


async def installs_out(kernel: Kernel) -> list[FederatedInstallOut]:
    rows = await kernel.db.scalars(
        select(FederatedInstall).order_by(FederatedInstall.installed_at, FederatedInstall.id)
    )
    return [_install_out(r) for r in rows]


async def uninstall(kernel: Kernel, install_id: uuid.UUID) -> FederatedInstall:
    db = kernel.db
    row = await db.scalar(select(FederatedInstall).where(FederatedInstall.id == install_id))
    if row is None:
        raise MarketplaceError(f"no federated install {install_id}", 404)
    try:
        await kernel.models.withdraw(row.model_name)
    except RegistryError as exc:
        if exc.status_code != 404:
            raise MarketplaceError(str(exc), exc.status_code) from None
    await db.delete(row)
    await db.flush()
    return row
