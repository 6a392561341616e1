"""Authenticated-request benchmark: Backplane's JWT and API-key paths against a bare Litestar app.

Run by ``tox run -e bench-auth``, or with the Python of any environment where ``backplane-core``
and the ``bench_auth`` plugin (``bench/auth/bench_plugin``) are installed:
``python bench/auth/run.py [--duration S] [--warmup S] [--rounds N] [--concurrency C]
[--client wrk|httpx] [--database-url URL] [--no-record]``.

In a temporary data directory (SQLite by default; ``--database-url`` for PostgreSQL), with only
the ``bench_auth`` plugin selected, it runs ``backplane db upgrade``, seeds two tenants (owner
with a password, owner-role API key; ``backplane.testing.seed_tenant``) and a few rows each,
then starts, on their own ports, ``backplane serve`` (one worker) and ``bench/auth/bare_app.py``
under uvicorn (same engine settings, same table, same query, no auth), logs in once for an
access token, checks that the three targets answer the same 200 body (and that a foreign row is
404, a bad credential 401), and then loads them one after the other, interleaved —
``bare, jwt, api key`` per round — with the same client, concurrency and duration:

- ``bare``   ``GET /items/{id}`` on the bare app;
- ``jwt``    ``GET /api/bench_auth/items/{id}`` with ``Authorization: Bearer <access token>``;
- ``apikey`` the same with ``Authorization: Bearer bp_<id>_<secret>``.

It reports per target the median over rounds of requests per second and of p50/p99 latency,
and the ratios ``jwt/bare`` and ``apikey/bare`` (goal: both >= 0.8, issue 17 acceptance 3),
records the run in ``bench/RESULTS.md`` (a re-run of the same commit, machine and database
replaces its earlier record) and exits 1 if a goal is missed. Any non-2xx answer during a load
fails the run: a fast 401 must never pass for throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
GOAL_RATIO = 0.8
PLUGIN = "bench_auth"
SLUG = "bench"
OTHER_SLUG = "bench-other"
ROWS_PER_TENANT = 100
START_TIMEOUT_S = 60
TARGETS = ("bare", "jwt", "apikey")
LABELS = {
    "bare": "bare Litestar handler (no auth)",
    "jwt": "Backplane, JWT access token",
    "apikey": "Backplane, API key",
}


# -- environment and setup ------------------------------------------------------------------
def clean_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The caller's environment without Backplane settings or telemetry; only ``bench_auth``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env["BACKPLANE_DATA_DIR"] = str(data_dir)
    env["BACKPLANE_PLUGINS"] = PLUGIN
    env["BACKPLANE_STRICT_PLUGINS"] = "true"
    env["BACKPLANE_DEMO_DATA"] = "false"
    # The run can outlast the default 15-minute access token; one login serves it all.
    env["BACKPLANE_AUTH__ACCESS_TTL_S"] = "7200"
    if database_url:
        env["BACKPLANE_DATABASE_URL"] = database_url
    return env


def backplane_command() -> str:
    found = shutil.which("backplane", path=str(Path(sys.executable).parent)) or shutil.which(
        "backplane"
    )
    if found is None:
        sys.exit("bench: no `backplane` command next to this Python or on PATH")
    return found


def run_checked(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(
            f"bench: {' '.join(args)} failed with exit code {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@dataclass
class Seeded:
    tenant_id: uuid.UUID
    email: str
    password: str
    api_key: str
    item_id: int
    item_name: str
    foreign_item_id: int


def seed(env: dict[str, str]) -> Seeded:
    """Two tenants (owner password + API key each) and ``ROWS_PER_TENANT`` rows per tenant."""
    from backplane.db import migrations
    from backplane.loading import load_plugins
    from backplane.settings import load_settings
    from backplane.testing import TEST_PASSWORD, seed_tenant

    settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)  # already done by `backplane db upgrade`: a no-op check
    tenant = seed_tenant(plugins, SLUG)
    other = seed_tenant(plugins, OTHER_SLUG)
    ids = asyncio.run(_insert_rows(settings, [tenant.tenant_id, other.tenant_id]))
    mine, theirs = ids[tenant.tenant_id], ids[other.tenant_id]
    item_id = mine[len(mine) // 2]
    return Seeded(
        tenant_id=tenant.tenant_id,
        email=tenant.email,
        password=TEST_PASSWORD,
        api_key=tenant.api_key,
        item_id=item_id,
        item_name=f"item {item_id}",
        foreign_item_id=theirs[0],
    )


async def _insert_rows(settings: Any, tenants: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
    from bp_bench_auth.models import BenchItem

    from backplane.db.engine import Database

    database = Database(settings)
    try:
        reason = "bench/auth seeds rows for two tenants"
        async with database.maintenance(reason) as session, session.begin():
            ids: dict[uuid.UUID, list[int]] = {t: [] for t in tenants}
            next_id = 1
            for _ in range(ROWS_PER_TENANT):
                for tenant_id in tenants:  # interleaved, so each tenant's ids are spread out
                    session.add(BenchItem(id=next_id, name=f"item {next_id}", tenant_id=tenant_id))
                    ids[tenant_id].append(next_id)
                    next_id += 1
        return ids
    finally:
        await database.dispose()


@contextmanager
def fresh_postgres_database(url: str) -> Iterator[str]:
    """Create a throw-away database on the server of ``url``; yield its URL; drop it after.

    The database named in ``url`` is only used to connect for ``CREATE``/``DROP DATABASE``.
    """
    import asyncpg  # type: ignore[import-untyped]

    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        sys.exit(f"bench: --database-url must be postgresql://..., got {scheme}://")
    base, _, query = rest.partition("?")
    server_part = base.rsplit("/", 1)[0] if "/" in base else base
    name = f"bench_auth_{uuid.uuid4().hex[:12]}"
    plain = f"postgresql://{base}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(plain, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{server_part}/{name}" + (f"?{query}" if query else "")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- servers --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(args: Sequence[str], env: dict[str, str], cwd: Path, probe: str) -> Iterator[int]:
    """Start a server process, wait until ``probe`` answers, stop it on exit; yields its pid."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        list(args), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                log.seek(0)
                sys.exit(
                    f"bench: {' '.join(args)} exited with {process.returncode}\n"
                    + log.read().decode(errors="replace")[-4000:]
                )
            try:
                if httpx.get(probe, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"bench: {' '.join(args)} did not answer {probe} in {START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# -- load -----------------------------------------------------------------------------------
@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_ms: float = 0.0
    """Server process CPU time (user + system, every thread) per request."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (every thread), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(s, attribute) for s in self.samples)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_wrk(target: Target, concurrency: int, duration: float) -> Sample:
    args = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--latency", "--timeout", "5s"]
    for name, value in target.headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*args, target.url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return Sample(rps, _ms(percentiles["50"]), _ms(percentiles["99"]), total, errors)


def load_httpx(target: Target, concurrency: int, duration: float) -> Sample:
    async def run() -> Sample:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(headers=target.headers, limits=limits, timeout=5) as client:
            start = time.perf_counter()
            stop = start + duration

            async def worker() -> None:
                nonlocal errors
                while (began := time.perf_counter()) < stop:
                    try:
                        response = await client.get(target.url)
                        ok = response.status_code < 400
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        latencies.append(time.perf_counter() - began)
                    else:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
        latencies.sort()

        def pct(p: float) -> float:
            return (
                latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3
                if latencies
                else 0.0
            )

        done = len(latencies) + errors
        return Sample(done / elapsed, pct(0.50), pct(0.99), done, errors)

    return asyncio.run(run())


# -- profile --------------------------------------------------------------------------------
def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


PROFILE_RATE_HZ = 250


def profile(
    target: Target, concurrency: int, duration: float, out_dir: Path, load: Any
) -> tuple[Path, Sample]:
    """Load ``target`` while ``py-spy`` samples its server; the raw (collapsed) stacks.

    Wall-clock sampling of active (non-idle) threads, so the event-loop thread's samples are
    the time it spent busy; divided by the requests served they give milliseconds per request,
    comparable between targets.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{target.name}.collapsed.txt"
    seconds = max(1, round(duration))
    spy = subprocess.Popen(
        [str(py_spy()), "record", "-p", str(target.pid), "-d", str(seconds),
         "-r", str(PROFILE_RATE_HZ), "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # py-spy attaches
    sample = load(target, concurrency, seconds)
    _, stderr = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not out.exists():
        sys.exit(f"bench: py-spy failed ({spy.returncode}): {stderr[-2000:]}")
    return out, sample


def _frame(frame: str) -> str:
    """``"func (.../site-packages/pkg/file.py:12)"`` -> ``"pkg/file.py:func"``."""
    match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frame)
    function, path = (match.group(1), match.group(2)) if match else (frame, "?")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/auth/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{function}"


def summarize(collapsed: Path, requests: int, top: int = 30) -> list[str]:
    """Where the event-loop thread's busy time goes, in milliseconds per request."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    loop = other = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        if any("threading.py:Thread._bootstrap" in f or "threading.py:_bootstrap" in f
               for f in frames[:2]):  # fmt: skip
            other += count  # aiosqlite / executor threads
            continue
        loop += count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    per_request = 1e3 / PROFILE_RATE_HZ / max(1, requests)  # ms per sample per request

    def ms(count: int) -> str:
        return f"{count * per_request:.3f}"

    lines = [
        f"{requests} requests; event-loop thread busy {ms(loop)} ms/request, other threads "
        f"{ms(other)} ms/request (py-spy, {PROFILE_RATE_HZ} Hz wall clock, idle excluded)",
        "",
        "| inclusive ms/req | % of loop | self ms/req | function |",
        "|---:|---:|---:|---|",
    ]
    boring = ("threading.py", "asyncio/", "<module>", "runpy", "uvicorn/server.py",
              "uvicorn/main.py", "uvicorn/_compat.py", "click/", "backplane/cli/")  # fmt: skip
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])
    for name, count in [kv for kv in ranked if not any(b in kv[0] for b in boring)][:top]:
        lines.append(
            f"| {ms(count)} | {100 * count / max(1, loop):.1f} | {ms(own.get(name, 0))} "
            f"| `{name}` |"
        )
    lines += ["", "| self ms/req | function (leaf) |", "|---:|---|"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {ms(count)} | `{name}` |")
    return lines


# -- checks ---------------------------------------------------------------------------------
def login(base: str, seeded: Seeded) -> str:
    response = httpx.post(
        f"{base}/api/auth/login",
        json={"email": seeded.email, "password": seeded.password, "tenant": SLUG},
        timeout=30,
    )
    if response.status_code != 200:
        sys.exit(f"bench: login failed: {response.status_code} {response.text}")
    return str(response.json()["access_token"])


def check_targets(targets: list[Target], seeded: Seeded, backplane: str) -> None:
    """Same 200 body from all three; a foreign row is 404; a bad credential 401."""
    expected = {"id": seeded.item_id, "name": seeded.item_name}
    for target in targets:
        response = httpx.get(target.url, headers=target.headers, timeout=10)
        if response.status_code != 200 or response.json() != expected:
            sys.exit(
                f"bench: {target.name}: expected 200 {expected}, "
                f"got {response.status_code} {response.text[:300]}"
            )
    foreign = f"{backplane}/api/{PLUGIN}/items/{seeded.foreign_item_id}"
    for target in targets[1:]:
        status = httpx.get(foreign, headers=target.headers, timeout=10).status_code
        if status != 404:
            sys.exit(f"bench: {target.name}: another tenant's row answered {status}, not 404")
    status = httpx.get(targets[1].url, headers={"Authorization": "Bearer bp_x_y"}).status_code
    if status != 401:
        sys.exit(f"bench: a bad API key answered {status}, not 401")


# -- reporting ------------------------------------------------------------------------------
def command_output(args: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": command_output(["date", "-u"]),
        "arch": command_output(["uname", "-m"]),
        "cpus": command_output(["nproc"]),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if Path("/proc/loadavg").exists()
        else "?",
    }


def git_revision() -> str:
    sha = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "core", "bench/auth"]
    )
    return f"{sha}{' + uncommitted changes' if dirty else ''}"


def versions() -> str:
    from importlib.metadata import version

    names = ("litestar", "uvicorn", "sqlalchemy", "aiosqlite", "asyncpg")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001 - optional drivers
            continue
    return ", ".join(found)


def table(targets: list[Target], bare: Target) -> list[str]:
    rounds = len(bare.samples)
    lines = [
        f"| target (median of {rounds}) | req/s | ratio to bare | p50 ms | p99 ms | "
        "server CPU ms/req | per-round req/s |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in targets:
        ratio = t.median("rps") / bare.median("rps")
        per_round = ", ".join(f"{s.rps:.0f}" for s in t.samples)
        lines.append(
            f"| {LABELS[t.name]} | {t.median('rps'):.0f} | {ratio:.2f} | "
            f"{t.median('p50_ms'):.2f} | {t.median('p99_ms'):.2f} | {t.median('cpu_ms'):.2f} | "
            f"{per_round} |"
        )
    return lines


def record(section: str, key: str) -> None:
    """Append the run to RESULTS.md, replacing an earlier one with the same key."""
    marker = f"<!-- bench-auth-key: {key} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    head, runs = parts[0], parts[1:]
    runs = [r.rstrip() for r in runs if marker not in r]
    runs.append(section.rstrip())
    RESULTS.write_text("\n\n".join([head.rstrip(), *runs]) + "\n")


# -- main -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per load (2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (wrk when installed, else an asyncio httpx client, which on a "
        "2-core machine is itself the bottleneck and flattens the ratios towards 1)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server, e.g. postgresql://postgres@127.0.0.1:5432/postgres: a fresh "
        "database is created there for the run and dropped after (default: SQLite in a temp dir)",
    )
    parser.add_argument(
        "--backplane-via",
        choices=("serve", "uvicorn"),
        default="serve",
        help="serve Backplane with `backplane serve --no-access-log` (default) or with "
        "`uvicorn backplane.app:create_app_from_environment "
        "--factory --no-access-log --log-level warning` (the same app, quiet like the bare one)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after the rounds, sample each server with py-spy under load; stacks and a "
        "summary of where the time goes go to DIR",
    )
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.duration <= 0 or options.concurrency < 1:
        parser.error("--rounds, --duration and --concurrency must be positive")
    if options.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: no `wrk` on PATH")
    load = load_wrk if options.client == "wrk" else load_httpx
    if options.profile is not None and py_spy() is None:
        parser.error("--profile: no `py-spy` next to this Python or on PATH (pip install py-spy)")

    backplane = backplane_command()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-auth-")))
        database_url = (
            stack.enter_context(fresh_postgres_database(options.database_url))
            if options.database_url
            else None
        )
        env = clean_env(work / "data", database_url)
        print(f"bench: {backplane} with {sys.executable}", flush=True)
        run_checked([backplane, "db", "upgrade"], env, work)
        seeded = seed(env)
        bp_port, bare_port = free_port(), free_port()
        bp_base, bare_base = f"http://127.0.0.1:{bp_port}", f"http://127.0.0.1:{bare_port}"
        bare_env = {**env, "BENCH_AUTH_TENANT_ID": str(seeded.tenant_id)}
        bare_args = [
            sys.executable, "-m", "uvicorn", "bare_app:create_app", "--factory",
            "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(bare_port),
            "--workers", "1", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        if options.backplane_via == "serve":
            # Quiet like the bare server: both without access log lines.
            bp_args = [
                backplane,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(bp_port),
                "--no-access-log",
            ]
        else:
            bp_args = [
                sys.executable, "-m", "uvicorn", "backplane.app:create_app_from_environment",
                "--factory", "--host", "127.0.0.1", "--port", str(bp_port), "--workers", "1",
                "--log-level", "warning", "--no-access-log", "--no-server-header",
            ]  # fmt: skip
        with (
            server(bp_args, env, work, f"{bp_base}/health/ready") as bp_pid,
            server(bare_args, bare_env, work, f"{bare_base}/items/{seeded.item_id}") as bare_pid,
        ):
            token = login(bp_base, seeded)
            path = f"/api/{PLUGIN}/items/{seeded.item_id}"
            targets = [
                Target("bare", f"{bare_base}/items/{seeded.item_id}", {}, bare_pid),
                Target("jwt", f"{bp_base}{path}", {"Authorization": f"Bearer {token}"}, bp_pid),
                Target(
                    "apikey",
                    f"{bp_base}{path}",
                    {"Authorization": f"Bearer {seeded.api_key}"},
                    bp_pid,
                ),
            ]
            check_targets(targets, seeded, bp_base)
            print(
                f"bench: {options.rounds} rounds x {len(targets)} targets, {options.client}, "
                f"{options.concurrency} connections, {options.warmup:g} s warm-up + "
                f"{options.duration:g} s each",
                flush=True,
            )
            for round_no in range(1, options.rounds + 1):
                for target in targets:
                    if options.warmup > 0:
                        load(target, options.concurrency, options.warmup)
                    cpu_before = cpu_seconds(target.pid)
                    sample = load(target, options.concurrency, options.duration)
                    cpu = cpu_seconds(target.pid) - cpu_before
                    sample.cpu_ms = 1e3 * cpu / max(1, sample.requests)
                    if sample.errors:
                        sys.exit(f"bench: {target.name}: {sample.errors} failed requests")
                    target.samples.append(sample)
                    print(
                        f"bench: round {round_no} {target.name:<6} {sample.rps:8.0f} req/s  "
                        f"p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:6.2f} ms  "
                        f"server CPU {sample.cpu_ms:.2f} ms/req",
                        flush=True,
                    )
            if options.profile is not None:
                for target in targets:
                    print(f"bench: profiling {target.name} (pid {target.pid})", flush=True)
                    collapsed, sample = profile(
                        target, options.concurrency, options.duration, options.profile, load
                    )
                    summary_file = options.profile / f"{target.name}.summary.md"
                    summary_file.write_text(
                        f"# py-spy: {LABELS[target.name]} ({sample.rps:.0f} req/s)\n\n"
                        + "\n".join(summarize(collapsed, sample.requests))
                        + "\n"
                    )
                    print(f"bench: {summary_file}", flush=True)

    bare = targets[0]
    ratios = {t.name: t.median("rps") / bare.median("rps") for t in targets[1:]}
    failed = [n for n, r in ratios.items() if r < GOAL_RATIO]
    verdict = (
        f"goal met (both ratios >= {GOAL_RATIO})"
        if not failed
        else "goal missed: " + ", ".join(f"{n}/bare {ratios[n]:.2f} < {GOAL_RATIO}" for n in failed)
    )
    info = machine()
    revision = git_revision()
    database = "PostgreSQL (asyncpg)" if options.database_url else "SQLite (aiosqlite, WAL)"
    rows = table(targets, bare)
    bp_how = (
        f"`backplane serve --no-access-log` (1 worker, plugin `{PLUGIN}` only)"
        if options.backplane_via == "serve"
        else "Backplane's app factory under `uvicorn --no-access-log` "
        f"(1 worker, plugin `{PLUGIN}` only)"
    )
    summary = [
        f"- machine: {info['arch']}, {info['cpus']} CPUs, {info['cpu']}, Python {info['python']}"
        f" (load average before recording: {info['load']}; the machine is shared)",
        f"- database: {database}; libraries: {versions()}",
        f"- servers: {bp_how} and `bench/auth/bare_app.py` (uvicorn, 1 worker, no access log),"
        " both on 127.0.0.1",
        f"- client: {options.client}, {options.concurrency} connections, {options.rounds} "
        f"interleaved rounds (bare, jwt, apikey), each {options.warmup:g} s warm-up + "
        f"{options.duration:g} s measured; every answer was 200",
        f"- ratios: jwt/bare **{ratios['jwt']:.2f}**, apikey/bare **{ratios['apikey']:.2f}** "
        f"(goal >= {GOAL_RATIO})",
        f"- verdict: {verdict}",
    ]

    print()
    print("\n".join(rows))
    print()
    print("\n".join(summary))
    print(f"{info['date']} · {revision}")
    print(f"bench: {verdict}")

    if not options.no_record:
        key = (
            f"{revision}; {info['arch']}; {info['cpus']}; {info['cpu']}; {info['python']}; "
            f"{database}; {options.client}; {options.backplane_via}"
        )
        section = "\n".join(
            [
                f"## Auth benchmark (`bench/auth`) · {info['date']} · {revision}",
                "",
                f"<!-- bench-auth-key: {key} -->",
                "Authenticated, tenant-scoped GET of one row (`GET /api/bench_auth/items/{id}`) "
                "against a bare Litestar handler running the same query; see "
                "`bench/auth/run.py`. Goal (issue 17, acceptance 3): req/s ratio >= 0.8 for "
                "both credential kinds.",
                "",
                *summary,
                "",
                *rows,
            ]
        )
        record(section, key)
        print(f"bench: recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
