"""Following installs: ``POST /api/marketplace/installs/{id}/upgrade`` (accept the announced
version now) and ``GET /api/marketplace/notices`` (the tenant's notices, newest first)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_marketplace.community_models import Notice
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS
from backplane_marketplace.follow import accept
from backplane_marketplace.installs import installs_out
from backplane_marketplace.models import ListingVersion
from backplane_marketplace.plugin import INSTALL, READ
from backplane_marketplace.schemas import InstallOut, NoticeOut


class FollowController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/installs/{install_id:uuid}/upgrade", guards=[requires(INSTALL)], status_code=200)
    async def upgrade(
        self, install_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> InstallOut:
        """Move a following install to its announced version now (409 if none is)."""
        install = await accept(kernel, install_id)
        return (await installs_out(kernel, install.id))[0]

    @get("/notices", guards=[requires(READ)])
    async def notices(
        self,
        kernel: NamedDependency[Kernel],
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Notices a page")] = 50,
    ) -> list[NoticeOut]:
        """The tenant's marketplace notices, newest first."""
        rows = await kernel.db.execute(
            select(Notice, ListingVersion.version)
            .join(ListingVersion, ListingVersion.id == Notice.to_version_id)
            .order_by(Notice.created_at.desc(), Notice.id)
            .limit(limit)
        )
        return [
            NoticeOut(
                id=n.id,
                install_id=n.install_id,
                listing_id=n.listing_id,
                kind=n.kind,
                version=version,
                message=n.message,
                effective_at=n.effective_at,
                created_at=n.created_at,
            )
            for n, version in rows.tuples()
        ]
