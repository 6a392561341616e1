"""Deleting a tenant while a request of it is in flight leaves no row behind (SQLite and
PostgreSQL).

The deletion first locks the tenant's row. A request that wrote a row before holds, through its
foreign key to the tenant (PostgreSQL), or the database's one write lock (SQLite), what the
deletion waits for: the deletion goes on once it commits, and deletes that row too. A request
that writes after the deletion is refused by the database (the tenant is gone), so nothing of
it is left either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from backplane.kernel import Rails
from backplane.privacy.tenants import delete_tenant
from tests.privacy_helpers import Stack, run, stack_on, tenant_counts


@pytest.fixture
def stack(data_dir: Path, db_env: dict[str, str]) -> Iterator[Stack]:
    with stack_on(data_dir, db_env) as made:
        for who in (made.a, made.b):
            answer = made.call(who, "POST", "/api/kitchen_sink/notes/", json={"body": "first"})
            assert answer.status_code == 201, answer.text
        yield made


def rows_left(stack: Stack) -> dict[str, int]:
    """The tables still holding rows of tenant A, by name (empty once it is all gone)."""
    return {
        name: rows for name, rows in tenant_counts(stack.plugins, stack.a.tenant_id).items() if rows
    }


def delete_now(stack: Stack, tenant: str) -> dict[str, Any]:
    """``backplane tenants delete`` as its own process would: rails of its own."""

    async def work() -> dict[str, Any]:
        rails = Rails.build(stack.plugins.settings, stack.plugins)
        try:
            return await delete_tenant(rails.kernel(), tenant)
        finally:
            await rails.close()

    result: dict[str, Any] = run(work())
    return result


def test_a_request_that_wrote_first_is_waited_for_and_deleted_with_its_tenant(
    stack: Stack,
) -> None:
    answers: list[Any] = []

    def slow_writer() -> None:
        params = {"seconds": "2", "write": "true"}
        answers.append(stack.call(stack.a, "POST", "/api/kitchen_sink/slow/", params=params))

    writer = threading.Thread(target=slow_writer)
    writer.start()
    time.sleep(1.0)  # the request has written its note, and holds its transaction open
    started = time.monotonic()
    deleted = delete_now(stack, "acme")
    waited = time.monotonic() - started
    writer.join()
    (answer,) = answers
    assert answer.status_code == 200, answer.text  # it committed before the deletion went on
    assert waited > 0.5  # the deletion waited for it
    assert deleted["rows"]["kitchen_sink_notes"] == 2  # its note went with the first one
    assert rows_left(stack) == {}
    assert tenant_counts(stack.plugins, stack.b.tenant_id)["kitchen_sink_notes"] == 1


def test_a_request_that_writes_after_the_deletion_is_refused(stack: Stack) -> None:
    from bp_sample_kitchen_sink.models import Note

    async def late_writer() -> None:
        rails = Rails.build(stack.plugins.settings, stack.plugins)
        try:
            async with rails.kernel().tenant(stack.a.tenant_id) as request:
                # In flight: its transaction has begun (it read the notes) ...
                assert await request.db.scalar(select(func.count()).select_from(Note)) == 1
                # ... when the operator deletes its tenant ...
                await delete_tenant(rails.kernel(), "acme")
                # ... and then it writes.
                request.db.add(Note(body="too late"))
                await request.db.flush()
        finally:
            await rails.close()

    with pytest.raises(DBAPIError):
        run(late_writer())
    assert rows_left(stack) == {}
    assert tenant_counts(stack.plugins, stack.b.tenant_id)["kitchen_sink_notes"] == 1
