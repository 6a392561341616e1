"""``backplane.db.commits.after_commit``: callbacks run once the outermost transaction commits,
never at a savepoint's release, and are dropped with the transaction or savepoint that rolls
back (on a real SQLite database through the ORM session, as the kernel uses it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from backplane.db.commits import after_commit


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    with Session(engine) as opened:
        yield opened
    engine.dispose()


def test_a_callback_runs_at_the_commit_not_at_a_savepoints_release(session: Session) -> None:
    calls: list[str] = []
    session.execute(text("SELECT 1"))
    with session.begin_nested():
        after_commit(session, lambda: calls.append("inside the savepoint"))
    assert calls == []  # the savepoint is released; nothing is committed yet
    after_commit(session, lambda: calls.append("outside"))
    session.commit()
    assert calls == ["inside the savepoint", "outside"]


def test_a_rolled_back_savepoint_drops_only_its_own_callbacks(session: Session) -> None:
    calls: list[str] = []
    after_commit(session, lambda: calls.append("before"))
    savepoint = session.begin_nested()
    after_commit(session, lambda: calls.append("rolled back"))
    inner = session.begin_nested()
    after_commit(session, lambda: calls.append("inside the rolled-back one"))
    inner.commit()
    savepoint.rollback()
    with session.begin_nested():
        after_commit(session, lambda: calls.append("kept"))
    session.commit()
    assert calls == ["before", "kept"]


def test_a_rollback_or_a_close_drops_everything(session: Session) -> None:
    calls: list[str] = []
    after_commit(session, lambda: calls.append("rolled back"))
    session.rollback()
    after_commit(session, lambda: calls.append("closed"))
    session.close()
    after_commit(session, lambda: calls.append("next transaction"))
    session.commit()
    assert calls == ["next transaction"]


def test_the_same_callback_in_one_transaction_runs_once_and_a_failure_stops_no_other(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def wake() -> None:
        calls.append("wake")

    def broken() -> None:
        raise RuntimeError("boom")

    for _ in range(3):
        after_commit(session, wake)
    after_commit(session, broken)
    after_commit(session, lambda: calls.append("after the failure"))
    session.commit()  # the commit stands: the failure is logged, not raised
    assert calls == ["wake", "after the failure"]
    assert "a callback after commit failed" in caplog.text
    session.commit()
    assert calls == ["wake", "after the failure"]  # each runs once
