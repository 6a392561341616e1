"""Live events: the ``GET /api/events`` stream, and platform events of types marked
``live=True`` (the kernel's ``quota.reached``) forwarded to their tenant's stream once the
transaction that emitted them commits (a rolled-back action shows nothing, and neither does one
rolled back to a savepoint while its transaction went on)."""

from __future__ import annotations

import logging
from typing import Any

from backplane.hookspecs import hookimpl

log = logging.getLogger(__name__)

_PENDING = "backplane.live.pending"
"""``session.info`` key: ``(transaction, tenant_id, payload)`` of live platform events awaiting
commit, each with the innermost transaction (a savepoint's, or the session's) that emitted it."""
_LISTENING = "backplane.live.listening"


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
    session = kernel.db.sync_session
    if _LISTENING not in session.info:  # once per session: sessions are short-lived
        session.info[_LISTENING] = True
        _publish_after_commit(session, rails.live)
    emitted_in = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((emitted_in, event.tenant_id, payload))


def _within(transaction: Any, ended: Any) -> bool:
    """Whether ``transaction`` is ``ended`` or one begun inside it (a savepoint of it)."""
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _publish_after_commit(session: Any, hub: Any) -> None:
    from sqlalchemy import event

    @event.listens_for(session, "after_commit")
    def committed(done: Any) -> None:
        if done.in_nested_transaction():  # a savepoint released: nothing is committed yet
            return
        for _, tenant_id, payload in done.info.pop(_PENDING, ()):
            hub.publish_soon(tenant_id, payload)

    @event.listens_for(session, "after_soft_rollback")
    def rolled_back(done: Any, ended: Any) -> None:
        # Every rollback, a savepoint's included: what was emitted inside it is dropped.
        pending = done.info.get(_PENDING)
        if pending:
            pending[:] = [entry for entry in pending if not _within(entry[0], ended)]
