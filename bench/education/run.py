"""xAPI record store benchmark (issue 22, acceptance 6).

``python bench/education/run.py [--database-url URL] [--statements N] [--single N]
[--batches N] [--queries N] [--no-record]``

On a fresh PostgreSQL database (created on the server of ``--database-url``, dropped after)
with only the education plugin: ``backplane db upgrade``, one tenant and an LRS credential,
``backplane serve`` (one worker). Then, in one run:

- **ingestion**: ``--single`` requests of one statement and ``--batches`` requests of 100,
  alternating, request by request, between the two sides so both see the same machine:

  - *plugin*: ``POST /xapi/statements`` through ``backplane serve`` (one sequential httpx
    client, keep-alive). In one transaction per request the server authenticates the LRS
    credential, validates the statements, completes them (stored, authority, version), and
    writes the statement rows, their related-key rows (agents and activities, for the
    ``related_*`` filters) and the canonical activity definitions they carry (upserted: an
    unchanged definition is not rewritten), after setting the tenant for row-level security;
    the statement rows are written voided when an earlier voiding statement targets them.
  - *Core*: the same inserts with plain SQLAlchemy Core and asyncpg, as the tables' owner, in
    one transaction per request: the statement rows (``INSERT ... RETURNING seq``), their
    related-key rows and the activity-definition upsert, i.e. every row the plugin's
    transaction writes, in the same number of transactions. Its rows, keys and JSON payloads
    are computed before the clock starts, as the plugin's request bodies are encoded before it.

  Statements/s of each and the ratio plugin/Core (goal >= 0.7 for both sizes); also the CPU
  time per request of the server process (plugin), of this process while it posts (the httpx
  client) and of this process while it runs the Core transaction: on a loaded machine the wall
  clock moves with the other work, CPU per request much less.
- **queries at scale**: ``--statements`` (1,000,000) statements of 10,000 learners, 1,000
  activities, 5 verbs and 10,000 registrations over 30 days are loaded with one
  ``INSERT ... SELECT generate_series`` (and their related keys with another), then
  ``--queries`` requests per filter (verb, agent, activity, registration, since, related
  activities, until, none; ``limit=100``) through ``GET /xapi/statements`` and the same SELECT with
  Core; p50/p99 (goal: the plugin's p99 < 100 ms at 1M); then, per filter, the indexes in
  PostgreSQL's plan (EXPLAIN ANALYZE) of the plugin's own page SELECT (``reader.build``).

Results are appended to ``bench/RESULTS.md`` (a re-run of the same commit replaces its record).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import (
    BenchError,
    cpu_seconds,
    exit_on_sigterm,
    free_port,
    fresh_postgres_database,
    git_revision,
    machine,
    record,
    server,
)

LEARNERS, ACTIVITIES, REGISTRATIONS = 10_000, 1_000, 10_000
VERBS = ["completed", "attempted", "passed", "failed", "answered"]
VERB = "http://adlnet.gov/expapi/verbs/"
MARKER = "<!-- bench/education"
JSON = {"Content-Type": "application/json"}


def statement(rng: random.Random) -> dict[str, Any]:
    learner = rng.randrange(LEARNERS)
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": f"mailto:learner{learner}@example.org"},
        "verb": {"id": VERB + rng.choice(VERBS), "display": {"en-US": "did"}},
        "object": {
            "objectType": "Activity",
            "id": f"http://example.org/activity/{rng.randrange(ACTIVITIES)}",
            "definition": {"name": {"en-US": "An activity"}},
        },
        "context": {
            "registration": str(uuid.UUID(int=rng.randrange(REGISTRATIONS) + 1)),
            "contextActivities": {"parent": [{"id": "http://example.org/course/1"}]},
        },
        "result": {"score": {"scaled": 0.5}, "completion": True},
    }


def clean_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env |= {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_DEMO_DATA": "false",
        "BACKPLANE_DATABASE_URL": database_url,
    }
    return env


def backplane_command() -> str:
    found = shutil.which("backplane", path=str(Path(sys.executable).parent))
    if found is None:
        raise BenchError("no `backplane` command next to this Python")
    return found


# -- plain SQLAlchemy Core: the same inserts and selects -----------------------------------------
class Core:
    """The LRS's tables driven with SQLAlchemy Core alone, as the owner (no RLS)."""

    def __init__(self, url: str, tenant_id: uuid.UUID) -> None:
        from sqlalchemy import MetaData
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        self.metadata = MetaData()
        self.tenant_id = tenant_id

    async def reflect(self) -> None:
        async with self.engine.connect() as connection:
            await connection.run_sync(
                self.metadata.reflect,
                only=["xapi_statements", "xapi_statement_refs", "xapi_activities"],
            )
        self.statements = self.metadata.tables["xapi_statements"]
        self.refs = self.metadata.tables["xapi_statement_refs"]

        self.activities = self.metadata.tables["xapi_activities"]

    def definitions(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The canonical activity definition rows the batch carries (the latest per activity),
        computed before the clock starts."""
        from backplane_education.xapi.shape import activity_definitions, activity_key

        latest = {aid: d for s in batch for aid, d in activity_definitions(s)}
        return [
            {
                "id": uuid.uuid4(),
                "tenant_id": self.tenant_id,
                "key": activity_key(aid),
                "activity_id": aid,
                "definition": definition,
            }
            for aid, definition in latest.items()
        ]

    def rows(self, batch: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[Any]]]:
        """Each statement's row and related keys, computed before the clock starts."""
        import msgspec

        from backplane_education.xapi.shape import keys_of

        out = []
        for s in batch:
            keys = keys_of(s)
            row = {
                "tenant_id": self.tenant_id,
                "statement_id": uuid.UUID(s["id"]),
                "stored": time_now(),
                "verb": keys.verb,
                "actor": keys.actor,
                "object_agent": None,
                "object_activity": keys.object_activity,
                "registration": uuid.UUID(keys.registration) if keys.registration else None,
                "voids": None,
                "voided": False,
                "has_attachments": False,
                "payload": msgspec.json.encode(s),
            }
            refs = [("g", a) for a in keys.agents] + [("a", a) for a in keys.activities]
            out.append((row, refs))
        return out

    async def insert(
        self, prepared: list[tuple[dict[str, Any], list[Any]]], definitions: list[dict[str, Any]]
    ) -> None:
        """The statement rows, their related keys and the canonical activity definitions
        (upserted as the LRS keeps them, an unchanged one not rewritten) in one transaction."""
        from sqlalchemy import Text, cast
        from sqlalchemy.dialects.postgresql import insert

        async with self.engine.begin() as connection:
            result = await connection.execute(
                self.statements.insert().returning(self.statements.c.seq),
                [row for row, _ in prepared],
            )
            seqs = [seq for (seq,) in result.all()]
            refs = [
                {
                    "tenant_id": self.tenant_id,
                    "seq": seq,
                    "kind": kind,
                    "value": value,
                    "stored": row["stored"],
                }
                for seq, (row, keys) in zip(seqs, prepared, strict=True)
                for kind, value in keys
            ]
            await connection.execute(self.refs.insert(), refs)
            if definitions:
                upsert = insert(self.activities)
                changed = cast(self.activities.c.definition, Text) != cast(
                    upsert.excluded.definition, Text
                )
                await connection.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["tenant_id", "key"],
                        set_={"definition": upsert.excluded.definition},
                        where=changed,
                    ),
                    definitions,
                )

    async def query(self, filters: dict[str, Any]) -> int:
        """The plugin's page SELECT written by hand: newest first by ``(stored, seq)``, a
        related filter driven by the related keys' index (which carries ``stored``)."""
        from sqlalchemy import or_, select

        s, r = self.statements, self.refs
        query = select(s.c.stored, s.c.seq, s.c.payload).where(
            s.c.tenant_id == self.tenant_id, s.c.voided.is_(False)
        )
        stored, seq = s.c.stored, s.c.seq
        if "agent" in filters:
            query = query.where(
                or_(s.c.actor == filters["agent"], s.c.object_agent == filters["agent"])
            )
        if "verb" in filters:
            query = query.where(s.c.verb == filters["verb"])
        if "activity" in filters:
            query = query.where(s.c.object_activity == filters["activity"])
        if "related_activity" in filters:
            query = query.join(r, r.c.seq == s.c.seq).where(
                r.c.tenant_id == self.tenant_id,
                r.c.kind == "a",
                r.c.value == filters["related_activity"],
            )
            stored, seq = r.c.stored, r.c.seq
        if "registration" in filters:
            query = query.where(s.c.registration == filters["registration"])
        if "since" in filters:
            query = query.where(stored > filters["since"])
        if "until" in filters:
            query = query.where(stored <= filters["until"])
        query = query.order_by(stored.desc(), seq.desc()).limit(101)
        async with self.engine.connect() as connection:
            return len((await connection.execute(query)).all())


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


LOAD_SQL = """
INSERT INTO xapi_statements (tenant_id, statement_id, stored, verb, actor, object_agent,
    object_activity, registration, voids, voided, has_attachments, payload)
SELECT :tenant, sid, stored, verb, 'mbox=mailto:learner' || learner || '@example.org', NULL,
    activity, registration, NULL, false, false,
    convert_to(json_build_object(
        'id', sid::text,
        'actor', json_build_object('objectType', 'Agent',
                                   'mbox', 'mailto:learner' || learner || '@example.org'),
        'verb', json_build_object('id', verb),
        'object', json_build_object('objectType', 'Activity', 'id', activity),
        'context', json_build_object('registration', registration::text),
        'stored', to_char(stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'timestamp', to_char(stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'version', '1.0.0')::text, 'UTF8')
FROM (
    SELECT gen_random_uuid() AS sid,
           now() - interval '30 days' + (g * interval '30 days' / :n) AS stored,
           'http://adlnet.gov/expapi/verbs/' || (ARRAY['completed','attempted','passed',
               'failed','answered'])[1 + g % 5] AS verb,
           (g * 7919) % 10000 AS learner,
           'http://example.org/activity/' || ((g * 104729) % 1000) AS activity,
           ('00000000-0000-0000-0000-' || lpad(to_hex(1 + (g * 31) % 10000), 12, '0'))::uuid
               AS registration
    FROM generate_series(1::bigint, :n) AS g
) AS generated
"""
LOAD_REFS_SQL = """
INSERT INTO xapi_statement_refs (tenant_id, seq, kind, value, stored)
SELECT tenant_id, seq, 'g', actor, stored FROM xapi_statements WHERE tenant_id = :tenant
UNION ALL
SELECT tenant_id, seq, 'a', object_activity, stored FROM xapi_statements WHERE tenant_id = :tenant
"""


async def load(url: str, tenant_id: uuid.UUID, n: int) -> float:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE xapi_statement_refs, xapi_statements"))
        # Secondary indexes are built once after the load, not maintained row by row.
        found = await connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                "('xapi_statements', 'xapi_statement_refs') AND indexname LIKE 'ix_%'"
            )
        )
        indexes = found.all()
        for name, _ in indexes:
            await connection.execute(text(f'DROP INDEX "{name}"'))
        await connection.execute(text(LOAD_SQL), {"tenant": tenant_id, "n": n})
        await connection.execute(text(LOAD_REFS_SQL), {"tenant": tenant_id})
        for _, definition in indexes:
            await connection.execute(text(definition))
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE xapi_statements"))
        await connection.execute(text("ANALYZE xapi_statement_refs"))
    await engine.dispose()
    return time.perf_counter() - started


# -- measuring ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def ingestion(
    http: httpx.Client,
    core: Core,
    loop: asyncio.AbstractEventLoop,
    size: int,
    count: int,
    rng: random.Random,
    server_pid: int,
) -> dict[str, float]:
    """Statements/s of the plugin and of Core for ``count`` requests of ``size`` statements,
    alternating plugin and Core request by request, and the CPU milliseconds per request of
    the server process, of the httpx client and of the Core transaction."""
    plugin_s = core_s = server_cpu = client_cpu = core_cpu = 0.0
    for _ in range(count):
        mine = [statement(rng) for _ in range(size)]
        body = msgspec.json.encode(mine[0] if size == 1 else mine)
        server_before, client_before = cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        answer = http.post("/xapi/statements", content=body, headers=JSON)
        plugin_s += time.perf_counter() - started
        client_cpu += time.process_time() - client_before
        server_cpu += cpu_seconds(server_pid) - server_before
        if answer.status_code != 200:
            raise BenchError(f"POST /xapi/statements: {answer.status_code} {answer.text}")
        batch = [statement(rng) for _ in range(size)]
        rows, definitions = core.rows(batch), core.definitions(batch)
        core_before = time.process_time()
        started = time.perf_counter()
        loop.run_until_complete(core.insert(rows, definitions))
        core_s += time.perf_counter() - started
        core_cpu += time.process_time() - core_before
    total = size * count
    return {
        "plugin": total / plugin_s,
        "core": total / core_s,
        "server_cpu_ms": 1000 * server_cpu / count,
        "client_cpu_ms": 1000 * client_cpu / count,
        "core_cpu_ms": 1000 * core_cpu / count,
    }


def filters(rng: random.Random) -> dict[str, Callable[[], tuple[dict[str, str], dict[str, Any]]]]:
    """Per filter: a (query parameters, Core filters) pair with fresh values each call."""
    import json

    def agent() -> tuple[dict[str, str], dict[str, Any]]:
        email = f"learner{rng.randrange(LEARNERS)}@example.org"
        return (
            {"agent": json.dumps({"mbox": f"mailto:{email}"})},
            {"agent": f"mbox=mailto:{email}"},
        )

    def verb() -> tuple[dict[str, str], dict[str, Any]]:
        value = VERB + rng.choice(VERBS)
        return {"verb": value}, {"verb": value}

    def activity() -> tuple[dict[str, str], dict[str, Any]]:
        value = f"http://example.org/activity/{rng.randrange(ACTIVITIES)}"
        return {"activity": value}, {"activity": value}

    def related() -> tuple[dict[str, str], dict[str, Any]]:
        value = f"http://example.org/activity/{rng.randrange(ACTIVITIES)}"
        return (
            {"activity": value, "related_activities": "true"},
            {"related_activity": value},
        )

    def registration() -> tuple[dict[str, str], dict[str, Any]]:
        value = uuid.UUID(int=rng.randrange(REGISTRATIONS) + 1)
        return {"registration": str(value)}, {"registration": value}

    def since() -> tuple[dict[str, str], dict[str, Any]]:
        from datetime import UTC, datetime, timedelta

        moment = datetime.now(UTC) - timedelta(days=rng.uniform(0.1, 29))
        return {"since": moment.isoformat()}, {"since": moment}

    def until() -> tuple[dict[str, str], dict[str, Any]]:
        from datetime import UTC, datetime, timedelta

        moment = datetime.now(UTC) - timedelta(days=rng.uniform(1, 29))
        return {"until": moment.isoformat()}, {"until": moment}

    def nothing() -> tuple[dict[str, str], dict[str, Any]]:
        return {}, {}

    return {
        "agent": agent,
        "verb": verb,
        "activity": activity,
        "related activities": related,
        "registration": registration,
        "since": since,
        "until": until,
        "none": nothing,
    }


def queries(
    http: httpx.Client,
    core: Core,
    loop: asyncio.AbstractEventLoop,
    count: int,
    rng: random.Random,
) -> dict[str, dict[str, float]]:
    results = {}
    for name, make in filters(rng).items():
        plugin_ms, core_ms = [], []
        for _ in range(count):
            params, core_filters = make()
            answer: list[Any] = []

            def get(params: dict[str, str] = params, answer: list[Any] = answer) -> None:
                answer.append(http.get("/xapi/statements", params={**params, "limit": "100"}))

            plugin_ms.append(timed(get) * 1000)
            if answer[0].status_code != 200:
                raise BenchError(f"GET /xapi/statements {params}: {answer[0].text}")
            core_ms.append(
                timed(lambda f=core_filters: loop.run_until_complete(core.query(f))) * 1000
            )
        results[name] = {
            "plugin_p50": statistics.median(plugin_ms),
            "plugin_p99": percentile(plugin_ms, 0.99),
            "core_p50": statistics.median(core_ms),
            "core_p99": percentile(core_ms, 0.99),
        }
    return results


def plans(
    core: Core, loop: asyncio.AbstractEventLoop, rng: random.Random
) -> dict[str, tuple[list[str], float, list[str], float]]:
    """Per filter: the indexes PostgreSQL's plan for the plugin's own page SELECT
    (``reader.build``, ``limit=100``) uses and its execution time (EXPLAIN ANALYZE), for the
    first page and for the next one (positioned after the first page's last ``(stored, seq)``,
    as a ``more`` token does)."""
    import re

    from backplane_education.xapi import reader
    from backplane_education.xapi.query import parse_statement_query

    async def explain(params: dict[str, str]) -> tuple[list[str], float, list[str], float]:
        query = parse_statement_query({**params, "limit": "100"}, 500)
        first = reader.build(core.tenant_id, query, None)
        async with core.engine.connect() as connection:
            rows = (await connection.execute(first)).all()
            used, took = await analyse(connection, first)
            if len(rows) <= query.limit:  # no next page
                return used, took, ["(no next page)"], 0.0
            after = (rows[query.limit - 1][0], rows[query.limit - 1][1])
            next_used, next_took = await analyse(
                connection, reader.build(core.tenant_id, query, after)
            )
        return used, took, next_used, next_took

    async def analyse(connection: Any, statement: Any) -> tuple[list[str], float]:
        compiled = statement.compile(dialect=core.engine.dialect)
        values = tuple(compiled.params[name] for name in compiled.positiontup or [])
        found = await connection.exec_driver_sql("EXPLAIN ANALYZE " + compiled.string, values)
        lines = [line for (line,) in found.all()]
        scans = r"(?:Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)"
        used = sorted({m for line in lines for m in re.findall(scans, line)})
        took = next(float(m) for line in lines if (m := _execution_ms(line)) is not None)
        return used, took

    return {
        name: loop.run_until_complete(explain(make()[0])) for name, make in filters(rng).items()
    }


def _execution_ms(line: str) -> str | None:
    prefix = "Execution Time: "
    return line.removeprefix(prefix).split()[0] if line.startswith(prefix) else None


def credential(base: str, api_key: str) -> dict[str, str]:
    made = httpx.post(
        f"{base}/api/education/xapi/credentials",
        json={"name": "bench"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    if made.status_code != 201:
        raise BenchError(f"creating an LRS credential: {made.status_code} {made.text}")
    pair = f"{made.json()['key']}:{made.json()['secret']}".encode()
    return {
        "Authorization": "Basic " + base64.b64encode(pair).decode(),
        "X-Experience-API-Version": "1.0.3",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=400)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-record", action="store_true")
    options = parser.parse_args()
    exit_on_sigterm()
    rng = random.Random(22)
    backplane = backplane_command()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database(options.database_url, "bench_education") as url,
    ):
        work = Path(tmp)
        env = clean_env(work / "data", url)
        subprocess.run(
            [backplane, "db", "upgrade"],
            env=env,
            cwd=work,
            check=True,
            capture_output=True,
            timeout=300,
        )
        os.environ.update({k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
        from backplane.loading import load_plugins
        from backplane.settings import load_settings
        from backplane.testing import seed_tenant

        plugins = load_plugins(load_settings())
        tenant = seed_tenant(plugins, "bench")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        args = [backplane, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]

        def ready() -> bool:
            return httpx.get(f"{base}/health/ready", timeout=2).status_code == 200

        loop = asyncio.new_event_loop()
        core = Core(url, tenant.tenant_id)
        loop.run_until_complete(core.reflect())
        with server("backplane serve", args, env, work, ready, [port]) as process:
            lrs = credential(base, tenant.api_key)
            with httpx.Client(base_url=base, headers=lrs, timeout=60) as http:
                ingestion(http, core, loop, 1, 20, rng, process.pid)  # warm-up
                ingestion(http, core, loop, 100, 3, rng, process.pid)
                single = ingestion(http, core, loop, 1, options.single, rng, process.pid)
                batched = ingestion(http, core, loop, 100, options.batches, rng, process.pid)
                load_s = loop.run_until_complete(load(url, tenant.tenant_id, options.statements))
                queries(http, core, loop, 10, rng)  # warm-up
                found = queries(http, core, loop, options.queries, rng)
                explained = plans(core, loop, rng)
        loop.run_until_complete(core.engine.dispose())
    report(options, single, batched, load_s, found, explained)


def report(
    options: argparse.Namespace,
    single: dict[str, float],
    batched: dict[str, float],
    load_s: float,
    found: dict[str, dict[str, float]],
    explained: dict[str, tuple[list[str], float, list[str], float]],
) -> None:
    ratio_single = single["plugin"] / single["core"]
    ratio_batched = batched["plugin"] / batched["core"]
    worst_p99 = max(r["plugin_p99"] for r in found.values())
    ok = {
        "single": ratio_single >= 0.7,
        "batched": ratio_batched >= 0.7,
        "p99": worst_p99 < 100,
    }
    facts = machine()
    revision = git_revision(["plugins/education", "bench/education", "core"])
    lines = [
        f"## xAPI record store (bench/education) — {facts['date']}",
        f"{MARKER} {revision} -->",
        "",
        f"- commit {revision}; {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']}, "
        f"Python {facts['python']}, load {facts['load']}; PostgreSQL, `backplane serve` 1 worker,"
        " one sequential httpx client (keep-alive); Core: SQLAlchemy Core + asyncpg as the owner",
        "",
        "| ingestion | plugin statements/s | Core statements/s (the same inserts) | ratio "
        "(goal >= 0.7) | CPU ms/request: server (plugin) | httpx client (plugin) | Core |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {r['plugin']:.0f} | {r['core']:.0f} | {ratio:.2f} "
            f"{'pass' if ok[key] else 'MISS'} | {r['server_cpu_ms']:.2f} | "
            f"{r['client_cpu_ms']:.2f} | {r['core_cpu_ms']:.2f} |"
            for name, key, r, ratio in (
                (f"single ({options.single} requests)", "single", single, ratio_single),
                (f"batches of 100 ({options.batches} requests)", "batched", batched, ratio_batched),
            )
        ),
        "",
        f"Loaded {options.statements:,} statements (+ {2 * options.statements:,} related keys) "
        f"with INSERT ... SELECT generate_series in {load_s:.1f} s.",
        "",
        f"| query at {options.statements:,} ({options.queries} each, limit=100) | plugin p50 ms "
        "| plugin p99 ms (goal < 100) | Core p50 ms | Core p99 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['plugin_p50']:.1f} | {r['plugin_p99']:.1f} | {r['core_p50']:.1f} | "
            f"{r['core_p99']:.1f} |"
            for name, r in found.items()
        ),
        "",
        "| filter | indexes in the plan of the plugin's SELECT (EXPLAIN ANALYZE) | execution ms "
        "| next page (after a `more` position): indexes | execution ms |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {', '.join(used) or 'none (sequential)'} | {took:.1f} | "
            f"{', '.join(next_used) or 'none (sequential)'} | {next_took:.1f} |"
            for name, (used, took, next_used, next_took) in explained.items()
        ),
        "",
        "Goals: " + ", ".join(f"{k} {'pass' if v else 'MISS'}" for k, v in ok.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if not options.no_record:
        record(text + "\n", f"{MARKER} {revision} -->")
    if not all(ok.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
