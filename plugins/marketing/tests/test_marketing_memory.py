"""A large import never holds its file in memory: 100,000 wide rows (about 58 MB) import with the
Python heap's peak (tracemalloc, across the request, the tasks and the worker) far below the
file's size. The million-row figure against a bare load is in ``bench/marketing``."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, IMPORTS, base_environ, upload

from backplane.testing import run_tasks

ROWS = 100_000
PAD = "x" * 550


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return base_environ(tmp_path) | {"BACKPLANE_FILES__MAX_UPLOAD_BYTES": str(200 * 2**20)}


def test_a_large_file_imports_in_bounded_memory(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    data = "email,name,notes\n" + "".join(
        f"user{n}@example.org,User {n},{PAD}\n" for n in range(ROWS)
    )
    payload = data.encode()
    del data
    file_id = upload(client, payload)
    size = len(payload)
    del payload
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        started = client.post(IMPORTS, json={"file_id": file_id})
        assert started.status_code == 202, started.text
        run_tasks(client, timeout=540)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    job = client.get(f"{IMPORTS}/{started.json()['id']}").json()
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == ROWS
    assert job["progress"]["total"] == ROWS
    growth = peak - baseline
    print(f"file {size / 2**20:.0f} MiB, heap peak growth {growth / 2**20:.1f} MiB")
    # Loaded whole, the file would take its size in bytes and several times that as rows of
    # Python objects; streamed, the heap grows by chunks (15-31 MiB measured, the embedded
    # worker's other allocations included), under the file's size whatever the load.
    assert growth < size, f"heap grew by {growth / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"
    last = client.get(CONTACTS, params={"email": f"user{ROWS - 1}@example.org"}).json()
    assert last["items"][0]["name"] == f"User {ROWS - 1}"
