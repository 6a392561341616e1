"""``/api/marketplace/review``: platform operators (``platform.marketplace.review``, held only
through ``backplane operators grant``) list and decide publishers' applications; audited in
the operator's tenant, and the decision with its reason is shown to the publisher."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS
from backplane_marketplace.listings import DECISIONS, decide_version, versions_out
from backplane_marketplace.models import ListingVersion, Publisher
from backplane_marketplace.plugin import REVIEW
from backplane_marketplace.publishers import decide, publisher_out
from backplane_marketplace.schemas import DecisionIn, PublisherOut, VersionOut

Req = Request[Principal, Any, Any]


class ReviewController(Controller):
    path = "/review"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS
    guards = [requires(REVIEW)]

    @get("/publishers")
    async def publishers(
        self,
        kernel: NamedDependency[Kernel],
        status: FromQuery[Literal["pending", "approved", "rejected"]] = "pending",
    ) -> list[PublisherOut]:
        """Applications in ``status`` (a query parameter), oldest first."""
        rows = await kernel.db.scalars(
            select(Publisher)
            .where(Publisher.state == status)
            .order_by(Publisher.applied_at, Publisher.id)
            .limit(500)
        )
        return [await publisher_out(kernel.db, p) for p in rows]

    @post("/publishers/{publisher_id:uuid}/approve", status_code=200)
    async def approve(
        self,
        request: Req,
        publisher_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
        kernel: NamedDependency[Kernel],
    ) -> PublisherOut:
        return await self._decide(request, kernel, publisher_id, "approved", data.reason)

    @post("/publishers/{publisher_id:uuid}/reject", status_code=200)
    async def reject(
        self,
        request: Req,
        publisher_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
        kernel: NamedDependency[Kernel],
    ) -> PublisherOut:
        """Reject with a reason (required) the publisher sees; it may apply again."""
        return await self._decide(request, kernel, publisher_id, "rejected", data.reason)

    async def _decide(
        self, request: Req, kernel: Kernel, publisher_id: uuid.UUID, state: str, reason: str
    ) -> PublisherOut:
        publisher = await decide(kernel.db, publisher_id, state, reason, request.user.user_id)
        action = "approved" if state == "approved" else "rejected"
        await kernel.audit.record(
            f"marketplace.publisher_{action}",
            target=("publisher", publisher.id),
            details={"tenant": str(publisher.publisher_tenant_id), "reason": reason[:200]},
        )
        return await publisher_out(kernel.db, publisher)

    @get("/versions")
    async def versions(
        self,
        kernel: NamedDependency[Kernel],
        status: FromQuery[
            Literal["in_review", "changes_requested", "approved", "rejected"]
        ] = "in_review",
    ) -> list[VersionOut]:
        """Submitted versions in ``status`` with their automatic checks' report, oldest first."""
        rows = await kernel.db.scalars(
            select(ListingVersion)
            .where(ListingVersion.state == status)
            .order_by(ListingVersion.submitted_at, ListingVersion.id)
            .limit(500)
        )
        return await versions_out(kernel.db, list(rows))

    @post("/versions/{version_id:uuid}/{decision:str}", status_code=200)
    async def decide_version(
        self,
        request: Req,
        version_id: FromPath[uuid.UUID],
        decision: FromPath[Literal["approve", "reject", "request-changes"]],
        data: JSONBody[DecisionIn],
        kernel: NamedDependency[Kernel],
    ) -> VersionOut:
        """Approve, reject or request changes (the last two with a reason the publisher sees)."""
        row = await decide_version(
            kernel.db, version_id, decision, data.reason, request.user.user_id
        )
        await kernel.audit.record(
            f"marketplace.version_{DECISIONS[decision]}",
            target=("version", row.id),
            details={"version": row.version, "reason": data.reason[:200]},
        )
        return (await versions_out(kernel.db, [row]))[0]
