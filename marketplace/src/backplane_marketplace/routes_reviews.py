"""Reviews of a catalog listing (``/api/marketplace/catalog/{listing_id}/reviews``, the
tenant's own at ``.../review``) and the publisher's replies
(``/api/marketplace/listings/{listing_id}/reviews/{review_id}/reply``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS
from backplane_marketplace.plugin import INSTALL, PUBLISH, READ
from backplane_marketplace.publishers import publisher_of
from backplane_marketplace.reviews import delete_review, reply_to, reviews_of, write_review
from backplane_marketplace.schemas import ReplyIn, ReviewIn, ReviewOut

Req = Request[Principal, Any, Any]


class ReviewsController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/catalog/{listing_id:uuid}/reviews", guards=[requires(READ)])
    async def list_reviews(
        self,
        listing_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Reviews a page")] = 50,
        offset: Annotated[int, QueryParameter(ge=0, description="Reviews to skip")] = 0,
    ) -> list[ReviewOut]:
        """The listing's reviews, latest first, without their authors (``mine`` marks the
        caller's tenant's)."""
        return await reviews_of(kernel, listing_id, limit, offset)

    @put("/catalog/{listing_id:uuid}/review", guards=[requires(INSTALL)])
    async def write(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        data: JSONBody[ReviewIn],
        kernel: NamedDependency[Kernel],
    ) -> Response[ReviewOut]:
        """Rate and review a listing the tenant installed (one review per tenant: a second
        PUT changes it; 201 when made, 200 when changed; 403 without an install)."""
        review, made = await write_review(kernel, listing_id, data, request.user.user_id)
        await kernel.audit.record(
            "marketplace.review_written",
            target=("review", review.id),
            details={"listing_id": str(listing_id), "rating": str(data.rating)},
        )
        return Response(review, status_code=201 if made else 200)

    @delete("/catalog/{listing_id:uuid}/review", guards=[requires(INSTALL)])
    async def remove(
        self, listing_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete the tenant's review of the listing."""
        review_id = await delete_review(kernel, listing_id)
        await kernel.audit.record(
            "marketplace.review_deleted",
            target=("review", review_id),
            details={"listing_id": str(listing_id)},
        )

    @put("/listings/{listing_id:uuid}/reviews/{review_id:uuid}/reply", guards=[requires(PUBLISH)])
    async def reply(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        review_id: FromPath[uuid.UUID],
        data: JSONBody[ReplyIn],
        kernel: NamedDependency[Kernel],
    ) -> ReviewOut:
        """The publisher answers a review of its listing ("" takes the answer back)."""
        publisher = await publisher_of(kernel.db, request.user.tenant_id)
        review = await reply_to(kernel, publisher, listing_id, review_id, data.reply)
        await kernel.audit.record(
            "marketplace.review_replied",
            target=("review", review_id),
            details={"listing_id": str(listing_id)},
        )
        return review
