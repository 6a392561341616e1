"""Billing benchmark: usage events per second, and current-usage reads at 1,000,000 events.

Run by ``tox run -e bench-billing``, or with the Python of any environment where
``backplane-core`` is installed: ``python bench/billing/run.py [--database-url URL]
[--batch N] [--batches N] [--concurrency C] [--recorder-events N] [--stored-events N]
[--reads N] [--no-record]``.

On PostgreSQL (a fresh database on the server of ``--database-url``, dropped after), with no
plugin but the kernel's own meters, it runs ``backplane db upgrade``, seeds one tenant (owner API
key) and measures, in this order:

1. **batches over HTTP**: ``backplane serve`` (one worker, no access log) on 127.0.0.1 and a
   bounded asyncio httpx client with ``--concurrency`` connections sending ``--batches``
   pre-encoded ``POST /api/billing/events`` bodies of ``--batch`` events each (unique
   transaction ids, ``inference.rows`` grouped by model), then stopping; events/s = events
   recorded / wall time from the first send to the last answer. Every event must answer
   ``recorded``.
2. **the in-process recorder**: ``UsageRecorder.record`` as a handler uses it, one event per
   transaction (session, record, commit), ``--concurrency`` tasks in one process.
3. **current-usage reads**: ``--stored-events`` more events are bulk-loaded with
   ``generate_series`` (spread over the current period so far, two meters, five models) and
   rolled up with one ``INSERT ... SELECT ... GROUP BY`` into the same hourly roll-ups the
   recorder maintains; then ``GET /api/billing/usage`` is timed ``--reads`` times, sequentially,
   after checking that it equals ``SUM``/``COUNT`` over the raw events.

Goals (issue 5, acceptance 5): >= 10,000 events/s for batches; usage reads p99 < 50 ms.
The run is recorded in ``bench/RESULTS.md`` (a re-run with the same key replaces its record)
and exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

HERE = Path(__file__).resolve().parent


def _auth_bench() -> Any:
    """``bench/auth/run.py``: its helpers (servers, fresh databases, machine facts) are reused."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_auth_run", HERE.parent / "auth" / "run.py")
    if spec is None or spec.loader is None:
        sys.exit("bench: cannot load bench/auth/run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


auth_bench = _auth_bench()

ROOT = HERE.parents[1]
GOAL_EVENTS_PER_S = 10_000
GOAL_READ_P99_MS = 50.0
SLUG = "bench"
MODELS = 5


def env_for(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env.update(
        {
            "BACKPLANE_DATA_DIR": str(data_dir),
            "BACKPLANE_PLUGINS": "",
            "BACKPLANE_DEMO_DATA": "false",
            "BACKPLANE_DATABASE_URL": database_url,
            "BACKPLANE_BILLING__MAX_BATCH_EVENTS": "5000",
        }
    )
    return env


def settings_of(env: dict[str, str]) -> Any:
    from backplane.settings import load_settings

    return load_settings(environ={k: v for k, v in env.items() if k.startswith("BACKPLANE_")})


# -- 1. batches over HTTP ---------------------------------------------------------------------
def bodies(count: int, size: int, prefix: str) -> list[bytes]:
    """Pre-encoded batch bodies (the client measures the server, not its own encoding)."""
    return [
        msgspec.json.encode(
            {
                "events": [
                    {
                        "transaction_id": f"{prefix}-{b}-{i}",
                        "code": "inference.rows",
                        "value": (i % 7) + 1,
                        "properties": {"model": f"m{i % MODELS}"},
                    }
                    for i in range(size)
                ]
            }
        )
        for b in range(count)
    ]


async def send_batches(
    base: str, api_key: str, payloads: list[bytes], concurrency: int
) -> tuple[float, int, list[float]]:
    """Send every payload once over ``concurrency`` connections; (seconds, recorded, latencies)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    recorded, latencies = 0, []
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as c:

        async def worker() -> None:
            nonlocal recorded
            while True:
                try:
                    payload = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                answer = await c.post("/api/billing/events", content=payload)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    sys.exit(f"bench: events answered {answer.status_code}: {answer.text[:300]}")
                out = answer.json()
                if out["errors"] or out["duplicates"]:
                    sys.exit(f"bench: a batch was not fully recorded: {answer.text[:300]}")
                recorded += out["recorded"]

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return time.perf_counter() - started, recorded, latencies


# -- 2. the in-process recorder ---------------------------------------------------------------
async def recorder_rate(settings: Any, tenant_id: uuid.UUID, total: int, tasks: int) -> float:
    from backplane.billing.usage import UsageRecorder
    from backplane.db.engine import create_engine, create_sessionmaker
    from backplane.db.tenancy import bind_tenant
    from backplane.kernel import Rails
    from backplane.loading import load_plugins

    rails = Rails.build(settings, load_plugins(settings))  # the process's meters and events
    meters, events = rails.meters, rails.events
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            async with sessions() as session:
                bind_tenant(session, tenant_id)
                await UsageRecorder(session, meters, events).record(
                    "inference.rows",
                    (n % 7) + 1,
                    transaction_id=f"rec-{n}",
                    properties={"model": f"m{n % MODELS}"},
                )
                await session.commit()

    try:
        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(tasks)])
        return total / (time.perf_counter() - started)
    finally:
        await engine.dispose()


# -- 3. bulk load and reads -------------------------------------------------------------------
BULK_EVENTS = """
INSERT INTO backplane_usage_events
    (id, tenant_id, meter, transaction_id, value, properties, occurred_at, created_at)
SELECT gen_random_uuid(), $1::uuid,
       CASE WHEN i % 2 = 0 THEN 'inference.rows' ELSE 'inference.requests' END,
       'bulk-' || i,
       CASE WHEN i % 2 = 0 THEN (i % 7) + 1 ELSE 1 END,
       json_build_object('model', 'm' || (i % 5)),
       $2::timestamptz + make_interval(secs => (i::float8 * $3::float8 / $4::float8)),
       now()
FROM generate_series(1, $4::int) AS i
"""
REBUILD = [
    "DELETE FROM backplane_usage_rollups WHERE tenant_id = $1::uuid",
    """INSERT INTO backplane_usage_rollups
        (tenant_id, meter, hour, group_key, count, total, maximum, latest, latest_at)
    SELECT tenant_id, meter, date_trunc('hour', occurred_at, 'UTC'),
           '{"model":"' || (properties->>'model') || '"}',
           count(*), sum(value), max(value),
           (array_agg(value ORDER BY occurred_at DESC))[1], max(occurred_at)
    FROM backplane_usage_events WHERE tenant_id = $1::uuid
    GROUP BY tenant_id, meter, date_trunc('hour', occurred_at, 'UTC'), properties->>'model'""",
    "DELETE FROM backplane_usage_counters WHERE tenant_id = $1::uuid",
    """INSERT INTO backplane_usage_counters (tenant_id, meter, period_start, value)
    SELECT tenant_id, meter, $2::timestamptz, sum(value) FROM backplane_usage_events
    WHERE tenant_id = $1::uuid AND occurred_at >= $2::timestamptz GROUP BY tenant_id, meter""",
]
"""Roll-ups (and quota counters) rebuilt from the events, in the recorder's own shape."""


async def bulk_load(url: str, tenant_id: uuid.UUID, count: int) -> tuple[float, dict[str, float]]:
    """Insert ``count`` events over the period so far and rebuild roll-ups; (seconds, truth)."""
    import asyncpg  # type: ignore[import-untyped]

    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max((now - start).total_seconds() - 60, 1.0)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        began = time.perf_counter()
        await connection.execute(BULK_EVENTS, str(tenant_id), start, span, count)
        for statement in REBUILD:
            args = [str(tenant_id), start] if "$2" in statement else [str(tenant_id)]
            await connection.execute(statement, *args)
        await connection.execute("ANALYZE backplane_usage_events")
        await connection.execute("ANALYZE backplane_usage_rollups")
        seconds = time.perf_counter() - began
        rows = await connection.fetch(
            "SELECT meter, count(*) AS n, sum(value) AS s FROM backplane_usage_events "
            "WHERE tenant_id = $1::uuid AND occurred_at >= $2 GROUP BY meter",
            str(tenant_id),
            start,
        )
        stored = await connection.fetchval("SELECT count(*) FROM backplane_usage_events")
    finally:
        await connection.close()
    truth = {r["meter"]: float(r["s"] if r["meter"] == "inference.rows" else r["n"]) for r in rows}
    truth["stored"] = float(stored)
    return seconds, truth


def time_reads(base: str, api_key: str, reads: int, truth: dict[str, float]) -> list[float]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        report = client.get("/api/billing/usage").json()
        values = {m["meter"]: m["value"] for m in report["meters"]}
        for meter in ("inference.rows", "inference.requests"):
            if abs(values[meter] - truth[meter]) > 1e-6 * max(truth[meter], 1):
                sys.exit(f"bench: usage of {meter} is {values[meter]}, events say {truth[meter]}")
        for _ in range(5):
            client.get("/api/billing/usage")
        latencies = []
        for _ in range(reads):
            started = time.perf_counter()
            answer = client.get("/api/billing/usage")
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                sys.exit(f"bench: usage answered {answer.status_code}")
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch (1000)")
    parser.add_argument("--batches", type=int, default=200, help="batches sent (200)")
    parser.add_argument("--concurrency", type=int, default=4, help="connections / tasks (4)")
    parser.add_argument("--recorder-events", type=int, default=5000)
    parser.add_argument("--stored-events", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)

    import tempfile

    from backplane.testing import seed_tenant

    backplane = auth_bench.backplane_command()
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-billing-") as tmp,
        auth_bench.fresh_postgres_database(args.database_url) as url,
    ):
        data_dir = Path(tmp)
        env = env_for(data_dir, url)
        auth_bench.run_checked([backplane, "db", "upgrade"], env, data_dir)
        settings = settings_of(env)
        from backplane.loading import load_plugins

        tenant = seed_tenant(load_plugins(settings), SLUG)
        port = auth_bench.free_port()
        base = f"http://127.0.0.1:{port}"
        serve = [backplane, "serve", "--port", str(port), "--no-access-log"]
        with auth_bench.server(serve, env, data_dir, f"{base}/health/live") as pid:
            asyncio.run(send_batches(base, tenant.api_key, bodies(3, args.batch, "warm"), 2))
            payloads = bodies(args.batches, args.batch, "b")
            cpu_before = auth_bench.cpu_seconds(pid)
            seconds, recorded, latencies = asyncio.run(
                send_batches(base, tenant.api_key, payloads, args.concurrency)
            )
            server_cpu = auth_bench.cpu_seconds(pid) - cpu_before
            if recorded != args.batches * args.batch:
                sys.exit(f"bench: {recorded} events recorded of {args.batches * args.batch}")
            batch_rate = recorded / seconds
            recorder = asyncio.run(
                recorder_rate(settings, tenant.tenant_id, args.recorder_events, args.concurrency)
            )
            load_s, truth = asyncio.run(bulk_load(url, tenant.tenant_id, args.stored_events))
            reads = time_reads(base, tenant.api_key, args.reads, truth)
        total_s = time.perf_counter() - began
    p50, p99 = statistics.median(reads), pct(reads, 0.99)
    ok_batches, ok_reads = batch_rate >= GOAL_EVENTS_PER_S, p99 < GOAL_READ_P99_MS
    facts = auth_bench.machine()
    lines = [
        "| measurement | result | goal |",
        "|---|---:|---|",
        f"| `POST /api/billing/events`, {args.batch} events/batch, {args.concurrency} connections "
        f"| **{batch_rate:,.0f} events/s** ({args.batches} batches in {seconds:.1f} s; "
        f"batch p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {pct(latencies, 0.99) * 1000:.0f} ms; server CPU "
        f"{server_cpu / recorded * 1e6:.0f} µs/event) | >= {GOAL_EVENTS_PER_S:,} |",
        f"| `UsageRecorder.record`, one event per transaction, {args.concurrency} tasks "
        f"| {recorder:,.0f} events/s ({args.recorder_events} events) | (none) |",
        f"| `GET /api/billing/usage` at {truth['stored']:,.0f} stored events, sequential "
        f"| p50 **{p50:.1f} ms**, p99 **{p99:.1f} ms** ({args.reads} reads) "
        f"| p99 < {GOAL_READ_P99_MS:.0f} ms |",
    ]
    verdict = (
        "both goals met"
        if ok_batches and ok_reads
        else "goal missed: "
        + ", ".join(
            m
            for m, ok in (
                (f"{batch_rate:,.0f} events/s < {GOAL_EVENTS_PER_S:,}", ok_batches),
                (f"read p99 {p99:.1f} ms >= {GOAL_READ_P99_MS:.0f}", ok_reads),
            )
            if not ok
        )
    )
    revision = git_revision()
    key = f"{revision}; {facts['arch']}; {facts['cpus']}; {facts['cpu']}; {facts['python']}; " + (
        f"B={args.batch}; N={args.batches}; C={args.concurrency}; S={args.stored_events}"
    )
    section = "\n".join(
        [
            f"## Billing benchmark (`bench/billing`) · {facts['date']} · {revision}",
            "",
            f"<!-- bench-billing-key: {key} -->",
            "Usage events through the events API (batches) and the in-process recorder, and "
            "current-usage reads over hourly roll-ups; see `bench/billing/run.py`. Goals "
            "(issue 5, acceptance 5): >= 10,000 events/s for batches on PostgreSQL, usage "
            "reads under 50 ms at 1,000,000 stored events.",
            "",
            f"- machine: {facts['arch']}, {facts['cpus']} CPUs, {facts['cpu']}, Python "
            f"{facts['python']} (load average after the run: {facts['load']}; the machine is "
            "shared, and the client, server and PostgreSQL share its cores)",
            "- database: PostgreSQL (asyncpg), a fresh database; libraries: "
            + auth_bench.versions(),
            "- server: `backplane serve --no-access-log` (1 worker, kernel only), 127.0.0.1; "
            "client: asyncio httpx, pre-encoded bodies, bounded (stops after the last batch)",
            f"- bulk load of {args.stored_events:,} events (`generate_series`) and roll-up "
            f"rebuild: {load_s:.1f} s; whole run {total_s:.0f} s",
            f"- verdict: {verdict}",
            "",
            *lines,
        ]
    )
    print(section)
    if not args.no_record:
        record(section, key)
    return 0 if ok_batches and ok_reads else 1


def git_revision() -> str:
    sha = auth_bench.command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = auth_bench.command_output(
        [
            "git",
            "-C",
            str(ROOT),
            "status",
            "--porcelain",
            "--",
            "core/src/backplane/billing",
            "bench/billing",
        ]
    )
    return f"{sha or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def record(section: str, key: str) -> None:
    """Append to RESULTS.md, replacing an earlier record with the same key."""
    import re

    marker = f"<!-- bench-billing-key: {key} -->"
    results = auth_bench.RESULTS
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    head, runs = parts[0], [r.rstrip() for r in parts[1:] if marker not in r]
    results.write_text("\n\n".join([head.rstrip(), *runs, section.rstrip()]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
