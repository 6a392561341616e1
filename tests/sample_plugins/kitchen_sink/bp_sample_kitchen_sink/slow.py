"""A route that holds its request's database session for a while, for availability tests.

``POST /api/kitchen_sink/slow?seconds=3`` runs one tenant-scoped query (so the session has
checked a pooled connection out and opened a transaction) and then sleeps with that connection
held, as a slow handler or a slow query would. Load tests use it to saturate the pool on purpose
and watch what happens to everyone else's requests.

It is kept out of the OpenAPI document: it is a fault-injection knob, not API, and the
schema-driven tests (the cross-tenant walk, schemathesis) would only spend their time sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bp_sample_kitchen_sink.models import Note

MAX_SLOW_SECONDS = 30.0
"""Upper bound on one slow request, so that a typo cannot park a connection for an hour."""


class SlowController(Controller):
    path = "/slow"
    include_in_schema = False

    @post("/", status_code=200)
    async def hold_session(
        self,
        db: NamedDependency[AsyncSession],
        seconds: Annotated[float, Parameter(ge=0, le=MAX_SLOW_SECONDS)],
        write: Annotated[bool, Parameter()] = False,
    ) -> dict[str, float]:
        """Count the tenant's notes (with ``write``, after adding one, so that the transaction
        holds a written row), then keep the session (and its connection) for ``seconds``."""
        started = time.monotonic()
        if write:
            db.add(Note(body="written by a slow request"))
            await db.flush()
        notes = await db.scalar(select(func.count()).select_from(Note))
        await asyncio.sleep(seconds)
        return {"notes": float(notes or 0), "held_s": time.monotonic() - started}
