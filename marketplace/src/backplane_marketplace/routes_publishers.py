"""``/api/marketplace/publisher``: a tenant applies to publish and, once approved, manages its
Ed25519 signing keys (register with a proof of possession, rotate, revoke); all audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.exc import IntegrityError

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS, MarketplaceError
from backplane_marketplace.models import Publisher
from backplane_marketplace.plugin import PUBLISH, READ
from backplane_marketplace.publishers import add_key, key_out, own_key, publisher_of, publisher_out
from backplane_marketplace.schemas import ApplyIn, KeyIn, KeyOut, PublisherOut
from backplane_marketplace.settings import MarketplaceSettings

Req = Request[Principal, Any, Any]


class PublisherController(Controller):
    path = "/publisher"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def show(self, request: Req, kernel: NamedDependency[Kernel]) -> PublisherOut | None:
        """The tenant's publisher profile (its application's state and the operators' reason,
        its keys); ``null`` until the tenant applies."""
        try:
            publisher = await publisher_of(kernel.db, request.user.tenant_id)
        except MarketplaceError:
            return None
        return await publisher_out(kernel.db, publisher)

    @post("/", guards=[requires(PUBLISH)])
    async def apply(
        self, request: Req, data: JSONBody[ApplyIn], kernel: NamedDependency[Kernel]
    ) -> PublisherOut:
        """Apply to publish, amend a pending application, or apply again after a rejection:
        the application waits for a platform operator's decision (409 once approved)."""
        db = kernel.db
        tenant_id = request.user.tenant_id
        try:
            publisher = await publisher_of(db, tenant_id)
        except MarketplaceError:
            publisher = Publisher(publisher_tenant_id=tenant_id)
        else:
            if publisher.state == "approved":
                raise MarketplaceError("this tenant is an approved publisher already", 409)
        publisher.display_name = data.display_name
        publisher.website = data.website
        publisher.description = data.description
        publisher.state = "pending"
        publisher.applied_by = request.user.user_id
        publisher.applied_at = datetime.now(UTC)
        publisher.decided_at = publisher.decided_by = None
        publisher.decision_reason = ""
        try:
            async with db.begin_nested():  # added inside: begin_nested() flushes first
                db.add(publisher)
                await db.flush()
        except IntegrityError:  # a concurrent application of the same tenant won
            raise MarketplaceError("this tenant's application is pending", 409) from None
        await kernel.audit.record(
            "marketplace.publisher_applied",
            target=("publisher", publisher.id),
            details={"display_name": data.display_name},
        )
        return await publisher_out(db, publisher)

    @post("/keys", guards=[requires(PUBLISH)])
    async def register_key(
        self,
        request: Req,
        data: JSONBody[KeyIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> KeyOut:
        """Register an Ed25519 public key; ``proof`` shows the caller holds its private half."""
        db = kernel.db
        publisher = await publisher_of(db, request.user.tenant_id)
        key = await add_key(
            db, publisher, data, request.user.user_id, plugin_settings.max_active_keys
        )
        await kernel.audit.record(
            "marketplace.key_registered",
            target=("signing_key", key.id),
            details={"fingerprint": key.fingerprint},
        )
        return key_out(key)

    @post("/keys/{signing_key_id:uuid}/rotate", guards=[requires(PUBLISH)])
    async def rotate_key(
        self,
        request: Req,
        signing_key_id: FromPath[uuid.UUID],
        data: JSONBody[KeyIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> KeyOut:
        """Replace an active key by a new one: the old key signs nothing new, what it signed
        still verifies (revoke it to stop that too)."""
        db = kernel.db
        publisher = await publisher_of(db, request.user.tenant_id)
        old = await own_key(db, publisher, signing_key_id)
        if old.revoked_at is not None or old.retired_at is not None:
            raise MarketplaceError("only an active key can be rotated", 409)
        old.retired_at = datetime.now(UTC)
        await db.flush()
        new = await add_key(
            db, publisher, data, request.user.user_id, plugin_settings.max_active_keys
        )
        await kernel.audit.record(
            "marketplace.key_rotated",
            target=("signing_key", new.id),
            details={"from": old.fingerprint, "to": new.fingerprint},
        )
        return key_out(new)

    @post("/keys/{signing_key_id:uuid}/revoke", guards=[requires(PUBLISH)])
    async def revoke_key(
        self, request: Req, signing_key_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> KeyOut:
        """Revoke a key: no signature it made verifies from now on."""
        db = kernel.db
        publisher = await publisher_of(db, request.user.tenant_id)
        key = await own_key(db, publisher, signing_key_id)
        if key.revoked_at is not None:
            raise MarketplaceError("the key is revoked already", 409)
        key.revoked_at = datetime.now(UTC)
        await db.flush()
        await kernel.audit.record(
            "marketplace.key_revoked",
            target=("signing_key", key.id),
            details={"fingerprint": key.fingerprint},
        )
        # Installed models it signed stop serving: at once in this process, within
        # inference.load_check_s in others (hook model_loading verifies again).
        kernel.models.recheck()
        return key_out(key)
