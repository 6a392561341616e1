"""Helpers of the recommenders' tests: both databases, a seeded school, a training run followed
to its end, and ``backplane serve`` on the test's database for tritonclient."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, run_in_tenant, run_tasks
from backplane_education.recommendations.school import School, seed_school

Client = TestClient[Litestar]


def environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_TRAINING__TIME_LIMIT_S": "90",
        # the cards' permutation importance (515 columns) is the kernel's, not under test here
        "BACKPLANE_TRAINING__IMPORTANCE_REPEATS": "0",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def train(client: Client, model: str) -> dict[str, Any]:
    started = client.post(f"/api/models/{model}/train")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while True:  # the run's task hands the fit to a subprocess and follows it
        run_tasks(client, timeout=120)
        run = client.get(f"/api/models/{model}/training-runs/{started.json()['id']}")
        assert run.status_code == 200, run.text
        if run.json()["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return dict(run.json())
        time.sleep(0.2)


def school_of(client: Client, tenant: SeededTenant | str, seed: int, **shape: Any) -> School:
    async def work(kernel: Any) -> School:
        return await seed_school(kernel, seed=seed, **shape)

    return run_in_tenant(client, tenant, work, plugin="education")


def in_tenant(client: Client, tenant: SeededTenant | str, work: Any) -> Any:
    return run_in_tenant(client, tenant, work, plugin="education")


@contextlib.contextmanager
def served(backplane_environ: dict[str, str], log: Path) -> Iterator[str]:
    """``backplane serve`` on the test's database (started at once, yielded once ready):
    ``host:port`` for tritonclient."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [str(Path(sys.executable).parent / "backplane"), "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **backplane_environ}, stdout=out, stderr=out
        )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(address: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://{address}/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"backplane serve never got ready:\n{log.read_text()[-3000:]}")
