"""Work to do once a transaction has committed: :func:`after_commit`.

SQLAlchemy's ``after_commit`` session event also fires when a savepoint is released, when
nothing is committed yet. A listener that acts on it (wakes the task relay, publishes a live
event) acts too early, and on work a later rollback undoes: the kernel had that bug twice (the
relay woke before the rows it was to send were committed and then slept a whole tick; live
events went out for transactions that rolled back). Callbacks registered here run once the
outermost transaction commits and are dropped with the transaction, or the savepoint, they were
registered in when that rolls back: the one place that rule lives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

_PENDING = "backplane.db.after_commit"
"""``session.info`` key: ``{(scope, callback): None}`` (a dict: ordered, and a repeat is one
key); ``scope`` is the innermost transaction (a savepoint's, or the session's) open when the
callback was added."""


def after_commit(session: Session | AsyncSession, callback: Callable[[], object]) -> None:
    """Call ``callback()`` once the outermost transaction of ``session`` commits.

    Dropped, never called, if that transaction rolls back, or if the savepoint open at
    registration rolls back (the transaction going on without its work). Callbacks run in
    registration order, on the thread that commits; an exception in one is logged and the rest
    still run (the commit has happened: raising would tell the caller it had not). Adding the
    same callback twice in the same transaction or savepoint adds it once, so "wake this up
    after the commit" may be said per row written.
    """
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    scope = sync.get_nested_transaction() or sync.get_transaction() or sync.begin()
    pending: dict[tuple[SessionTransaction, Callable[[], object]], None]
    pending = sync.info.setdefault(_PENDING, {})
    pending.setdefault((scope, callback), None)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``ended`` or one begun inside it (a savepoint of it)."""
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: nothing is committed yet
        return
    for _, callback in session.info.pop(_PENDING, ()):
        try:
            callback()
        except Exception:  # the commit stands; the other callbacks still run
            log.exception("a callback after commit failed: %r", callback)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, ended: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        for entry in [entry for entry in pending if _within(entry[0], ended)]:
            del pending[entry]


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # A session closed with its transaction still open ends it without a rollback event:
    # what it registered must not run at the commit of the session's next transaction.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
