"""Live events: the ``GET /api/events`` stream, and platform events of types marked
``live=True`` (the kernel's ``quota.reached``) forwarded to their tenant's stream once the
transaction that emitted them commits (a rolled-back action shows nothing, and neither does one
rolled back to a savepoint while its transaction went on)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from backplane.db.commits import after_commit
from backplane.hookspecs import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.live.routes import live_events

    register(live_events)


@hookimpl
def event_emitted(kernel: Any, event: Any) -> None:
    from backplane.kernel import internals

    rails = internals(kernel)
    event_type = rails.events.types.get(event.type)
    if event_type is None or not event_type.live:
        return
    try:
        payload = rails.live.encode(event.type, event.data, user=False, at=event.created_at)
    except ValueError as exc:  # the platform event stands; only its live copy is dropped
        log.warning("platform event %s not sent live: %s", event.type, exc)
        return
    # The hub is told only once the transaction commits (nothing for a rollback, or for a
    # savepoint rolled back while its transaction went on).
    after_commit(kernel.db, partial(rails.live.publish_soon, event.tenant_id, payload))
