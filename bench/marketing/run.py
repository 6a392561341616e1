"""Marketing import benchmark (issue 23, acceptance 6, first half): CSV rows/s imported through
the plugin against a bare load of the same rows into the same PostgreSQL database.

``python bench/marketing/run.py [--rows N] [--database-url URL] [--no-record]`` where
``backplane-marketing`` is installed (the tests env has it). On a fresh database (dropped after):

- **bare**: the file read with ``csv.reader``, addresses lower-cased, rows loaded with asyncpg's
  ``copy_records_to_table`` into ``bare_contacts``, created ``LIKE marketing_contacts`` with its
  defaults, constraints and indexes (the same columns and unique keys the plugin writes: a
  fair comparison; no validation, no upsert);
- **plugin**: the same file stored through ``POST /api/files`` and imported by
  ``POST /api/marketing/imports``, run by the embedded worker (email validation, typed
  attributes, upserts by normalised email in batches, chunked outbox tasks), timed from the
  request to the job's ``succeeded``.

Goals: plugin at least 0.5 x bare, and ≥ 10,000 rows/s (listmonk's published figure). The run is
appended to ``bench/RESULTS.md``; the exit status is 1 on a missed goal.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import BenchError, fresh_postgres_database, git_revision, machine, record  # noqa: E402

GOAL_RATIO, GOAL_ROWS_PER_S = 0.5, 10_000


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,score\n")
        for n in range(rows):
            out.write(f"User{n}@Example.org,User {n},{n % 100}\n")


BARE_COLUMNS = ["id", "tenant_id", "email", "name", "attributes", "consent", "consent_source"]
BARE_COLUMNS += ["import_id", "created_at", "updated_at"]


async def bare_load(url: str, path: Path) -> float:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE bare_contacts (LIKE marketing_contacts INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        tenant, job, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
        started = time.perf_counter()
        with path.open(encoding="utf-8", newline="") as source:
            reader = csv.reader(source)
            next(reader)
            batch: list[tuple[Any, ...]] = []
            for email, name, score in reader:
                attributes = json.dumps({"score": int(score)})
                row = (uuid.uuid4(), tenant, email.lower(), name, attributes, "unknown", "")
                batch.append((*row, job, now, now))
                if len(batch) >= 20_000:
                    await connection.copy_records_to_table(
                        "bare_contacts", records=batch, columns=BARE_COLUMNS
                    )
                    batch = []
            if batch:
                await connection.copy_records_to_table(
                    "bare_contacts", records=batch, columns=BARE_COLUMNS
                )
        return time.perf_counter() - started
    finally:
        await connection.close()


def plugin_environ(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env |= {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "marketing",
        "BACKPLANE_DEMO_DATA": "false",
        "BACKPLANE_DATABASE_URL": url,
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_FILES__MAX_UPLOAD_BYTES": str(4 * 2**30),
    }
    return env


def upgrade(env: dict[str, str]) -> None:
    command = shutil.which("backplane", path=str(Path(sys.executable).parent)) or "backplane"
    upgraded = subprocess.run(
        [command, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    if upgraded.returncode != 0:
        raise BenchError(f"backplane db upgrade failed: {upgraded.stderr[-2000:]}")


def wait_for_import(client: Any, import_id: str) -> dict[str, Any]:
    """The job once finished, asked for ten times a second (``run_tasks`` asks the outbox 50
    times a second on the task runtime's own event loop: its queries would compete with the
    import they are waiting for)."""
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/marketing/imports/{import_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise BenchError(f"import {import_id} still not finished after an hour")


def plugin_load(env: dict[str, str], path: Path) -> float:
    os.environ.update({k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
    from litestar.testing import TestClient

    from backplane.app import create_app
    from backplane.settings import load_settings
    from backplane.testing import run_tasks, seed_tenant

    app = create_app(load_settings())
    with TestClient(app) as client:
        tenant = seed_tenant(client, "bench")
        client.headers["Authorization"] = f"Bearer {tenant.api_key}"
        client.post("/api/marketing/attributes", json={"key": "score", "type": "number"})
        stored = client.post("/api/files", params={"name": path.name}, content=path.read_bytes())
        if stored.status_code != 201:
            raise BenchError(f"upload failed: {stored.text}")
        started = time.perf_counter()
        job = client.post("/api/marketing/imports", json={"file_id": stored.json()["id"]})
        if job.status_code != 202:
            raise BenchError(f"import refused: {job.text}")
        final = wait_for_import(client, job.json()["id"])
        elapsed = time.perf_counter() - started
        run_tasks(client, timeout=60)  # anything the last chunk queued (none here)
    if final["status"] != "succeeded" or final["progress"]["failed"]:
        raise BenchError(f"import did not succeed cleanly: {final}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-marketing-") as work:
        path = Path(work) / "contacts.csv"
        make_csv(path, args.rows)
        with fresh_postgres_database(args.database_url, "bench_marketing") as url:
            env = plugin_environ(url, Path(work) / "data")
            upgrade(env)  # the plugin's tables: the bare load copies their shape
            bare_s = asyncio.run(bare_load(url, path))
            plugin_s = plugin_load(env, path)
    bare_rate, plugin_rate = args.rows / bare_s, args.rows / plugin_s
    ratio = plugin_rate / bare_rate
    ok = ratio >= GOAL_RATIO and plugin_rate >= GOAL_ROWS_PER_S
    info = machine()
    lines = [
        f"## marketing import, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{git_revision(['plugins/marketing'])}",
        "",
        f"Machine: {info.get('cpu', '?')}, load {info.get('load', '?')}; {args.rows:,} CSV rows.",
        "",
        "| load | seconds | rows/s |",
        "|---|---|---|",
        f"| bare COPY (asyncpg) into a table LIKE marketing_contacts | {bare_s:.1f} | "
        f"{bare_rate:,.0f} |",
        f"| plugin import | {plugin_s:.1f} | {plugin_rate:,.0f} |",
        "",
        f"Ratio plugin/bare {ratio:.2f} (goal ≥ {GOAL_RATIO}), plugin rows/s goal ≥ "
        f"{GOAL_ROWS_PER_S:,}: {'met' if ok else 'MISSED'}.",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        record(section, f"marketing import, {datetime.now(UTC):%Y-%m-%d %H}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
