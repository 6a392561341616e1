"""Recording an API key's use is best effort: on SQLite, a long writer (a bulk job's chunk, in
one transaction) holding the write lock past the busy timeout made the request answer 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

from tests.identity_helpers import Seeded


def test_a_locked_database_does_not_fail_an_api_key_request(
    client: TestClient[Litestar], tenant_a: Seeded, data_dir: Path
) -> None:
    database = data_dir / "backplane.sqlite3"
    holder = sqlite3.connect(database, isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held past the 5 s busy timeout
        answer = client.get("/api/me", headers=tenant_a.headers)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["tenant_id"] == str(tenant_a.tenant_id)
