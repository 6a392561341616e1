"""Task throughput benchmark: tasks through the kernel's outbox and actor wrapper against plain
dramatiq actors on the same broker: one that does nothing, and one that does the same
exactly-once database work as the kernel's claim.

Run by ``tox run -e bench-tasks``, or with the Python of any environment where ``backplane-core``,
the ``bench_tasks`` plugin (``bench/tasks/bench_plugin``), ``psycopg[binary]`` and
``psycopg-pool`` are installed:
``python bench/tasks/run.py [--tasks N] [--rounds R] [--processes P] [--threads T]
[--batch B] [--brokers rabbitmq,redis] [--database-url URL] [--set NAME=VALUE ...]
[--profile DIR] [--no-record]``.

On a fresh throw-away PostgreSQL database (created on the server of ``--database-url``, dropped
after) it runs ``backplane db upgrade`` with only the ``bench_tasks`` plugin selected, then, for
each broker, measures three sides one after the other, interleaved (one run of each per round,
the order rotated every round), each time with freshly started worker processes of the same
shape (P processes of T threads):

- ``plain``    ``bench/tasks/plain_actors.py``'s no-op actor on a broker configured as the
  kernel configures its own; this process calls ``actor.send()`` N times; ``python -m dramatiq
  plain_actors --processes P --threads T`` consumes. Done when the broker's queue is empty
  (Redis: ``qsize``, which counts a message until it is acknowledged; RabbitMQ: ready messages
  of the queue and its delay queue, which leaves at most 2*T*P prefetched messages unfinished,
  in the plain side's favour).
- ``plain_db`` the same module's ``bench_mark_done`` actor: N rows are inserted into a table of
  the benchmark database before the timed run (not timed), this process sends their ids, and
  each run marks its row done in one transaction if it is not done yet (``BEGIN``, ``UPDATE ...
  RETURNING``, ``COMMIT``: what running a task exactly once needs, which a no-op actor does not
  do), with psycopg 3 and a pool per worker process (why: the module's docstring). Done when
  the N rows are ``done``.
- ``kernel``   the ``bench_tasks.noop`` task (``async def noop(ctx): pass``); this process plays
  the web app: a ``TaskRuntime`` started as ``backplane serve`` starts it with a real broker
  (relay on, scheduler off), and N ``TaskQueue.enqueue`` calls in transactions of B (as B
  requests' worth of tasks would be); ``backplane worker --processes P --threads T --queues
  bench_tasks`` consumes (each worker process also runs a relay, as it does in production).
  Done when N outbox rows are ``done``.

A round's number is N / (seconds from the first send or enqueue to the last task done). Before
each timed run the fresh workers run a short warm-up batch (not timed) and the queue, outbox or
table is emptied. It reports the median tasks/s per side and broker, the ratios kernel/plain_db
(goal >= 0.8, issue 16) and kernel/plain (reported: a baseline that does less work than
exactly-once needs), CPU time per task of the workers, of this process, of the local servers'
processes (PostgreSQL, Redis, RabbitMQ, which other work on the machine may use too) and of the
whole machine, records the run in ``bench/RESULTS.md`` (a re-run of the same commit, machine and
settings replaces its earlier record) and exits 1 if the goal is missed. With ``--profile DIR``
it then runs one more kernel measurement per broker under ``py-spy`` (workers and this process)
and writes where the time goes, in microseconds per task.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
GOAL_RATIO = 0.8
PLUGIN = "bench_tasks"
TASK = "bench_tasks.noop"
KERNEL_QUEUE = "bench_tasks"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
POLL_S = 0.02
PROFILE_RATE_HZ = 100
BROKER_URLS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis": "redis://127.0.0.1:6379/13",
}
SIDES = ("plain", "plain_db", "kernel")
LABELS = {
    "plain": "plain dramatiq actor, no-op",
    "plain_db": "plain dramatiq actor, marks its row done once (psycopg)",
    "kernel": "Backplane task (outbox + wrapper)",
}
GOAL_BASELINE = "plain_db"


# -- environment and setup ------------------------------------------------------------------
def clean_env(
    data_dir: Path, database_url: str, broker_url: str, extra: dict[str, str]
) -> dict[str, str]:
    """The caller's environment without Backplane settings or telemetry; only ``bench_tasks``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env.pop("BENCH_TASKS_BROKER_URL", None)
    env["BACKPLANE_DATA_DIR"] = str(data_dir)
    env["BACKPLANE_PLUGINS"] = PLUGIN
    env["BACKPLANE_STRICT_PLUGINS"] = "true"
    env["BACKPLANE_DEMO_DATA"] = "false"
    env["BACKPLANE_DATABASE_URL"] = database_url
    env["BACKPLANE_BROKER_URL"] = broker_url
    env.update(extra)
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
        list(args), capture_output=True, text=True, env=env, cwd=cwd,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(
            f"bench: {' '.join(args)} failed with exit code {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@contextmanager
def fresh_postgres_database(url: str) -> Iterator[str]:
    """Create a throw-away database on the server of ``url``; yield its URL; drop it after."""
    import asyncpg  # type: ignore[import-untyped]

    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        sys.exit(f"bench: --database-url must be postgresql://..., got {scheme}://")
    base, _, query = rest.partition("?")
    server_part = base.rsplit("/", 1)[0] if "/" in base else base
    name = f"bench_tasks_{uuid.uuid4().hex[:12]}"
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


# -- processes and CPU ----------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            found += [int(c) for c in text.split()]
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes (every thread), from ``/proc``."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


SERVERS = ("postgres", "redis-server", "beam.smp")
"""The local servers' processes (PostgreSQL backends, Redis, RabbitMQ's Erlang VM), by name."""


def server_pids() -> list[int]:
    """The servers' processes now (PostgreSQL starts a backend per connection: look again)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in SERVERS:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core), from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Workers:
    pid: int
    log: Any
    pids: list[int] = field(default_factory=list)


@contextmanager
def workers(
    args: Sequence[str], env: dict[str, str], cwd: Path, processes: int
) -> Iterator[Workers]:
    """Start a dramatiq worker tree; wait until each process is ready; stop it on exit."""
    log = tempfile.NamedTemporaryFile(prefix="bench-tasks-worker-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen(
        list(args), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            text = Path(log.name).read_text(errors="replace")
            if text.count("is ready for action") >= processes:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(
                    f"bench: {' '.join(args)} did not start ({process.returncode})\n{text[-4000:]}"
                )
            time.sleep(0.1)
        started = Workers(process.pid, log)
        started.pids = process_tree(process.pid)
        yield started
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # dramatiq's graceful shutdown
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group this run created
                process.wait()
        text = Path(log.name).read_text(errors="replace")
        log.close()
        if "Traceback" in text:
            print(f"bench: worker log of {' '.join(args[:3])} has errors:\n{text[-3000:]}")


# -- the two sides --------------------------------------------------------------------------
class Side:
    name: str

    def worker_args(self, processes: int, threads: int) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        raise NotImplementedError

    def reset(self) -> None:
        """Start a timed run from an empty queue (and outbox)."""

    def prepare(self, n: int) -> None:
        """What the side needs before it is sent ``n`` tasks (not timed)."""

    def send(self, n: int) -> None:
        raise NotImplementedError

    def finished(self, n: int) -> bool:
        raise NotImplementedError

    def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.finished(n):
            if time.monotonic() > deadline:
                sys.exit(f"bench: {self.name}: {n} tasks not finished within {timeout:.0f} s")
            time.sleep(POLL_S)

    def close(self) -> None:
        pass


def purge(broker: Any) -> None:
    """Empty the broker's declared queues (RabbitMQ declares lazily: declare, then purge)."""
    if hasattr(broker, "channel"):
        for queue in list(broker.get_declared_queues()):
            broker.declare_queue(queue, ensure=True)
    broker.flush_all()


class PlainSide(Side):
    name = "plain"

    def __init__(self, kind: str, url: str, env: dict[str, str]) -> None:
        sys.path.insert(0, str(HERE))
        from plain_actors import DB_QUEUE, QUEUE, build

        self.kind, self.env = kind, env
        self.broker, noop, mark_done = build(url)
        self.queue, self.actor = (DB_QUEUE, mark_done) if self.name == "plain_db" else (QUEUE, noop)
        self.url = url
        purge(self.broker)

    def worker_args(self, processes: int, threads: int) -> list[str]:
        return [
            sys.executable, "-m", "dramatiq", "plain_actors", "--path", str(HERE),
            "--processes", str(processes), "--threads", str(threads), "--queues", self.queue,
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if not k.startswith("BACKPLANE_")}
        return {**env, "BENCH_TASKS_BROKER_URL": self.url}

    def reset(self) -> None:
        purge(self.broker)

    def send(self, n: int) -> None:
        send = self.actor.send
        for _ in range(n):
            send()

    def remaining(self) -> int:
        if self.kind == "redis":
            return int(self.broker.do_qsize(self.queue))
        counts = self.broker.get_queue_message_counts(self.queue)
        return int(counts[0] + counts[1])  # ready in the queue and in its delay queue

    def finished(self, n: int) -> bool:
        return self.remaining() == 0

    def close(self) -> None:
        purge(self.broker)
        self.broker.close()


class PlainDbSide(PlainSide):
    """The plain actor that marks a pre-inserted row done, once, in a transaction of its own."""

    name = "plain_db"

    def __init__(
        self, kind: str, url: str, env: dict[str, str], database_url: str, threads: int
    ) -> None:
        import psycopg
        from plain_actors import CREATE_TABLE, TABLE

        super().__init__(kind, url, env)
        self.database_url, self.threads, self.table = database_url, threads, TABLE
        self.db = psycopg.connect(database_url, autocommit=True)
        self.db.execute(CREATE_TABLE)
        self.ids: list[str] = []

    def worker_env(self) -> dict[str, str]:
        return {
            **super().worker_env(),
            "BENCH_TASKS_DATABASE_URL": self.database_url,
            "BENCH_TASKS_POOL_SIZE": str(self.threads),
        }

    def reset(self) -> None:
        super().reset()
        self.db.execute(f"TRUNCATE {self.table}")

    def prepare(self, n: int) -> None:
        self.ids = [str(uuid.uuid4()) for _ in range(n)]
        with self.db.cursor().copy(f"COPY {self.table} (id, status) FROM STDIN") as copy:
            for row_id in self.ids:
                copy.write_row((row_id, "sent"))
        self.db.execute(f"ANALYZE {self.table}")

    def send(self, n: int) -> None:
        send = self.actor.send
        for row_id in self.ids[:n]:
            send(row_id)

    def finished(self, n: int) -> bool:
        """No row left ``sent`` (through the status index, as the kernel side polls), and
        then exactly ``n`` rows done."""
        waiting = self.db.execute(
            f"SELECT 1 FROM {self.table} WHERE status = 'sent' LIMIT 1"
        ).fetchone()
        if waiting is not None:
            return False
        row = self.db.execute(f"SELECT count(*) FROM {self.table} WHERE status = 'done'").fetchone()
        done = int(row[0]) if row is not None else 0
        if done != n:
            sys.exit(f"bench: plain_db: expected {n} rows done, found {done}")
        return True

    def close(self) -> None:
        super().close()
        self.db.close()


class KernelSide(Side):
    name = "kernel"

    def __init__(self, backplane: str, env: dict[str, str], batch: int) -> None:
        from backplane.kernel import Rails
        from backplane.loading import load_plugins
        from backplane.settings import load_settings

        self.backplane, self.env, self.batch = backplane, env, batch
        settings = load_settings(
            environ={k: v for k, v in env.items() if k.startswith("BACKPLANE_")}
        )
        self.runtime = Rails.build(settings, load_plugins(settings)).tasks
        if TASK not in self.runtime.tasks:
            sys.exit(f"bench: the kernel did not register {TASK}: is bench_tasks installed?")
        purge(self.runtime.broker)
        # As `backplane serve` starts it with a real broker: the relay, no scheduler.
        self.runtime.start(relay=True, scheduler=False)
        self.tenant_id = uuid.uuid4()
        from bp_bench_tasks.plugin import noop

        self.function = noop

    def worker_args(self, processes: int, threads: int) -> list[str]:
        return [
            self.backplane, "worker", "--processes", str(processes), "--threads", str(threads),
            "--queues", KERNEL_QUEUE,
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return self.env

    def reset(self) -> None:
        from sqlalchemy import text

        async def go() -> None:
            async with self.runtime.sessionmaker() as session, session.begin():
                await session.execute(text("TRUNCATE backplane_task_outbox"))

        self.runtime.run(go())
        purge(self.runtime.broker)

    def send(self, n: int) -> None:
        from backplane.db.tenancy import bind_tenant

        async def go() -> None:
            for start in range(0, n, self.batch):
                async with self.runtime.sessionmaker() as session:
                    bind_tenant(session, self.tenant_id)
                    queue = self.runtime.queue_for(session)
                    for _ in range(min(self.batch, n - start)):
                        await queue.enqueue(self.function)
                    await session.commit()

        self.runtime.run(go(), timeout=600)

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from backplane.tasks.models import OutboxMessage

        async def go() -> dict[str, int]:
            async with self.runtime.sessionmaker() as session:
                rows = await session.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.actor == TASK)
                    .group_by(OutboxMessage.status)
                )
                return {status: int(count) for status, count in rows}

        return self.runtime.run(go())

    def unfinished(self) -> str | None:
        """The status of one benchmark row not yet done (``pending``/``sent``/``failed``), or
        None.

        Only ``bench_tasks.noop`` rows: the workers' schedulers also enqueue the kernel's own
        periodic jobs (one runs every minute) on a queue these workers do not consume, and such
        a row must not stall the run. Cheap (the status index, LIMIT 1), so polling it costs the
        kernel side no more than the plain side's queue-size polling costs the broker."""
        from sqlalchemy import text

        async def go() -> str | None:
            async with self.runtime.sessionmaker() as session:
                return (
                    await session.execute(
                        text(
                            "SELECT status FROM backplane_task_outbox WHERE status IN "
                            "('pending', 'sent', 'failed') AND actor = :actor LIMIT 1"
                        ),
                        {"actor": TASK},
                    )
                ).scalar()

        return self.runtime.run(go())

    def finished(self, n: int) -> bool:
        status = self.unfinished()
        if status == "failed":
            sys.exit(f"bench: kernel: a task failed: {self.counts()}")
        if status is not None:
            return False
        done = self.counts().get("done", 0)
        if done != n:  # every enqueued row is committed before polling starts
            sys.exit(f"bench: kernel: expected {n} tasks done, found {self.counts()}")
        return True

    def close(self) -> None:
        purge(self.runtime.broker)
        self.runtime.stop()
        self.runtime.broker.close()


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Sample:
    tasks_per_s: float
    seconds: float
    send_s: float
    worker_cpu_us: float
    server_cpu_us: float
    driver_cpu_us: float
    machine_cpu_us: float


def measure(
    side: Side, n: int, warmup: int, processes: int, threads: int, spy: Path | None = None
) -> Sample:
    """One timed run with freshly started workers (warmed up, not timed)."""
    timeout = max(120.0, n / 20)
    with workers(
        side.worker_args(processes, threads), side.worker_env(), ROOT, processes
    ) as started:
        side.reset()
        if warmup:
            side.prepare(warmup)
            side.send(warmup)
            side.wait(warmup, timeout)
        side.reset()
        side.prepare(n)
        spies: list[subprocess.Popen[str]] = []
        if spy is not None:
            spies = [
                start_spy(
                    started.pid, spy / f"{side.name}-workers.collapsed.txt", subprocesses=True
                ),
                start_spy(
                    os.getpid(), spy / f"{side.name}-driver.collapsed.txt", subprocesses=False
                ),
            ]
            time.sleep(1.0)  # py-spy attaches
        pids = process_tree(started.pid)
        worker_cpu, driver_cpu = cpu_seconds(pids), sum(os.times()[:2])
        machine = machine_busy_seconds()
        servers = cpu_seconds(server_pids())
        began = time.perf_counter()
        side.send(n)
        sent = time.perf_counter()
        side.wait(n, timeout)
        ended = time.perf_counter()
        worker_cpu = cpu_seconds(pids) - worker_cpu
        driver_cpu = sum(os.times()[:2]) - driver_cpu
        machine = machine_busy_seconds() - machine
        servers = cpu_seconds(server_pids()) - servers  # backends that exited meanwhile: lost
        for process in spies:
            stop_spy(process)
    seconds = ended - began
    return Sample(
        tasks_per_s=n / seconds,
        seconds=seconds,
        send_s=sent - began,
        worker_cpu_us=1e6 * worker_cpu / n,
        server_cpu_us=1e6 * servers / n,
        driver_cpu_us=1e6 * driver_cpu / n,
        machine_cpu_us=1e6 * machine / n,
    )


# -- profile --------------------------------------------------------------------------------
def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def start_spy(pid: int, out: Path, *, subprocesses: bool) -> subprocess.Popen[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [str(py_spy()), "record", "-p", str(pid), "-r", str(PROFILE_RATE_HZ), "-f", "raw",
            "-o", str(out), "-d", "600", "--gil"]  # fmt: skip
    if subprocesses:
        args.append("--subprocesses")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_spy(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def _frame(frame: str) -> str:
    """``"func (.../site-packages/pkg/file.py:12)"`` -> ``"pkg/file.py:func"``."""
    match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frame)
    function, path = (match.group(1), match.group(2)) if match else (frame, "?")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/tasks/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{function}"


THREADS = (
    ("tasks loop thread", "backplane/tasks/loop.py:LoopThread.run"),
    ("dramatiq worker threads", "dramatiq/worker.py:WorkerThread.run"),
    ("dramatiq consumer threads", "dramatiq/worker.py:ConsumerThread.run"),
    ("relay sends (to_thread)", "concurrent/futures/thread.py:_worker"),
)


def summarize(collapsed: Path, tasks: int, top: int = 40) -> list[str]:
    """Where the busy (non-idle) samples go, in microseconds of CPU per task."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    per_thread: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        total += count
        kind = next((label for label, marker in THREADS if marker in frames), "other threads")
        per_thread[kind] = per_thread.get(kind, 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
    per_task = 1e6 / PROFILE_RATE_HZ / max(1, tasks)

    def us(count: int) -> str:
        return f"{count * per_task:.0f}"

    lines = [
        f"{tasks} tasks; {total} busy samples = {us(total)} µs per task (py-spy, "
        f"{PROFILE_RATE_HZ} Hz, `--gil`: only samples of a thread holding the GIL, so Python "
        "CPU time; C code that releases the GIL (socket I/O, waits) is not counted)",
        "",
        "| threads | µs/task | % of samples |",
        "|---|---:|---:|",
    ]
    for kind, count in sorted(per_thread.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {us(count)} | {100 * count / max(1, total):.1f} |")
    lines += ["", "| inclusive µs/task | % of samples | self µs/task | function |",
              "|---:|---:|---:|---|"]  # fmt: skip
    boring = ("threading.py", "<module>", "runpy", "click/", "asyncio/events.py:Handle._run",
              "asyncio/base_events.py:BaseEventLoop.run_forever",
              "asyncio/base_events.py:BaseEventLoop._run_once")  # fmt: skip
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])
    for name, count in [kv for kv in ranked if not any(b in kv[0] for b in boring)][:top]:
        lines.append(
            f"| {us(count)} | {100 * count / max(1, total):.1f} | {us(own.get(name, 0))} "
            f"| `{name}` |"
        )
    lines += ["", "| self µs/task | % of samples | function (leaf) |", "|---:|---:|---|"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {us(count)} | {100 * count / max(1, total):.1f} | `{name}` |")
    return lines


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
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def git_revision() -> str:
    sha = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "core", "bench/tasks"]
    )
    return f"{sha}{' + uncommitted changes' if dirty else ''}"


def versions() -> str:
    from importlib.metadata import version

    found = []
    for name in ("dramatiq", "pika", "redis", "sqlalchemy", "asyncpg"):
        try:
            found.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001 - optional
            continue
    return ", ".join(found)


def server_versions(rabbitmq_url: str, redis_url: str, database_url: str) -> str:
    found = []
    try:
        import asyncpg  # type: ignore[import-untyped]

        async def pg() -> str:
            connection = await asyncpg.connect(database_url, timeout=10)
            try:
                return str(await connection.fetchval("SHOW server_version"))
            finally:
                await connection.close()

        found.append(f"PostgreSQL {asyncio.run(pg()).split()[0]}")
    except Exception:  # noqa: BLE001 - informative only
        pass
    try:
        import redis

        found.append(f"Redis {redis.Redis.from_url(redis_url).info()['redis_version']}")
    except Exception:  # noqa: BLE001
        pass
    try:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        version = connection._impl.server_properties.get("version", b"?")
        connection.close()
        found.append(f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}")
    except Exception:  # noqa: BLE001
        pass
    return ", ".join(found)


def median_rate(runs: list[Sample]) -> float:
    return statistics.median(s.tasks_per_s for s in runs)


def table(samples: dict[str, dict[str, list[Sample]]]) -> list[str]:
    lines = [
        "| broker | side | tasks/s (median) | kernel / this side | per-round tasks/s | "
        "send/enqueue s | worker CPU µs/task | driver CPU µs/task | servers CPU µs/task | "
        "machine CPU µs/task |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for broker, sides in samples.items():
        kernel = median_rate(sides["kernel"])
        for name in SIDES:
            runs = sides[name]
            rate = median_rate(runs)

            def med(attribute: str, runs: list[Sample] = runs) -> float:
                return statistics.median(getattr(s, attribute) for s in runs)

            lines.append(
                f"| {broker} | {LABELS[name]} | {rate:.0f} | {kernel / rate:.2f} | "
                f"{', '.join(f'{s.tasks_per_s:.0f}' for s in runs)} | {med('send_s'):.2f} | "
                f"{med('worker_cpu_us'):.0f} | {med('driver_cpu_us'):.0f} | "
                f"{med('server_cpu_us'):.0f} | {med('machine_cpu_us'):.0f} |"
            )
    return lines


def round_ratios(runs: dict[str, list[Sample]], baseline: str) -> str:
    """kernel/baseline within each round (the two ran minutes apart at most)."""
    pairs = zip(runs["kernel"], runs[baseline], strict=True)
    return ", ".join(f"{k.tasks_per_s / b.tasks_per_s:.2f}" for k, b in pairs)


def record(section: str, key: str) -> None:
    """Append the run to RESULTS.md, replacing an earlier one with the same key."""
    marker = f"<!-- bench-tasks-key: {key} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    head, runs = parts[0], parts[1:]
    runs = [r.rstrip() for r in runs if marker not in r]
    runs.append(section.rstrip())
    RESULTS.write_text("\n\n".join([head.rstrip(), *runs]) + "\n")


# -- main -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per timed run (5000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed tasks per run (200)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process (4)")
    parser.add_argument("--batch", type=int, default=100, help="enqueues per transaction (100)")
    parser.add_argument("--brokers", default="rabbitmq,redis", help="rabbitmq,redis")
    parser.add_argument("--rabbitmq-url", default=BROKER_URLS["rabbitmq"])
    parser.add_argument("--redis-url", default=BROKER_URLS["redis"])
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server: a fresh database is created there for the run, dropped after",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="BACKPLANE_NAME=VALUE",
        help="a kernel setting for the driver and the kernel workers, e.g. "
        "BACKPLANE_TASKS__RELAY_INTERVAL_S=0.05 (recorded with the run)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="after the rounds, one more kernel run per broker under py-spy; stacks and a "
        "summary of where the time goes go to DIR",
    )  # fmt: skip
    options = parser.parse_args(argv)
    brokers = [b.strip() for b in options.brokers.split(",") if b.strip()]
    if not brokers or any(b not in BROKER_URLS for b in brokers):
        parser.error("--brokers: a comma-separated subset of rabbitmq,redis")
    if min(options.tasks, options.rounds, options.processes, options.threads, options.batch) < 1:
        parser.error("--tasks, --rounds, --processes, --threads and --batch must be positive")
    extra: dict[str, str] = {}
    for item in options.settings:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("BACKPLANE_TASKS__"):
            parser.error(f"--set {item!r}: expected BACKPLANE_TASKS__NAME=VALUE")
        extra[name] = value
    if options.profile is not None and py_spy() is None:
        parser.error("--profile: no `py-spy` next to this Python or on PATH (pip install py-spy)")
    urls = {"rabbitmq": options.rabbitmq_url, "redis": options.redis_url}

    backplane = backplane_command()
    samples: dict[str, dict[str, list[Sample]]] = {}
    profiles: dict[str, Path] = {}
    started_at = time.monotonic()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tasks-")))
        database_url = stack.enter_context(fresh_postgres_database(options.database_url))
        print(f"bench: {backplane} with {sys.executable}", flush=True)
        base_env = clean_env(work / "data", database_url, urls[brokers[0]], extra)
        run_checked([backplane, "db", "upgrade"], base_env, work)
        print(
            f"bench: {options.rounds} rounds x (plain, plain_db, kernel) per broker, "
            f"N={options.tasks} (+{options.warmup} warm-up), {options.processes} worker "
            f"processes x {options.threads} threads, {options.batch} enqueues per transaction",
            flush=True,
        )
        for broker in brokers:
            env = clean_env(work / "data", database_url, urls[broker], extra)
            sides: dict[str, Side] = {
                "plain": PlainSide(broker, urls[broker], env),
                "plain_db": PlainDbSide(broker, urls[broker], env, database_url, options.threads),
                "kernel": KernelSide(backplane, env, options.batch),
            }
            samples[broker] = {name: [] for name in SIDES}
            try:
                for round_no in range(1, options.rounds + 1):
                    shift = (round_no - 1) % len(SIDES)  # each side goes first in turn
                    for name in SIDES[shift:] + SIDES[:shift]:
                        sample = measure(
                            sides[name], options.tasks, options.warmup,
                            options.processes, options.threads,
                        )  # fmt: skip
                        samples[broker][name].append(sample)
                        print(
                            f"bench: {broker:<8} round {round_no} {name:<8} "
                            f"{sample.tasks_per_s:7.0f} tasks/s  ({sample.seconds:.2f} s, "
                            f"send {sample.send_s:.2f} s)  CPU µs/task: workers "
                            f"{sample.worker_cpu_us:.0f}, driver {sample.driver_cpu_us:.0f}, "
                            f"servers {sample.server_cpu_us:.0f}, "
                            f"machine {sample.machine_cpu_us:.0f}",
                            flush=True,
                        )
                if options.profile is not None:
                    out = options.profile / broker
                    print(f"bench: {broker}: profiling a kernel run with py-spy", flush=True)
                    sample = measure(
                        sides["kernel"], options.tasks, options.warmup,
                        options.processes, options.threads, spy=out,
                    )  # fmt: skip
                    for part in ("workers", "driver"):
                        collapsed = out / f"kernel-{part}.collapsed.txt"
                        summary = out / f"kernel-{part}.summary.md"
                        summary.write_text(
                            f"# py-spy: kernel {part}, {broker} "
                            f"({sample.tasks_per_s:.0f} tasks/s under the profiler)\n\n"
                            + "\n".join(summarize(collapsed, options.tasks))
                            + "\n"
                        )
                        profiles[f"{broker} {part}"] = summary
                        print(f"bench: {summary}", flush=True)
            finally:
                for side in sides.values():
                    side.close()
    elapsed = time.monotonic() - started_at

    ratios = {
        broker: {
            baseline: median_rate(sides["kernel"]) / median_rate(sides[baseline])
            for baseline in ("plain_db", "plain")
        }
        for broker, sides in samples.items()
    }
    failed = [b for b, r in ratios.items() if r[GOAL_BASELINE] < GOAL_RATIO]
    verdict = (
        f"goal met (kernel/{GOAL_BASELINE} >= {GOAL_RATIO} on every broker)"
        if not failed
        else "goal missed: "
        + ", ".join(
            f"{b} kernel/{GOAL_BASELINE} {ratios[b][GOAL_BASELINE]:.2f} < {GOAL_RATIO}"
            for b in failed
        )
    )
    info = machine()
    revision = git_revision()
    rows = table(samples)
    settings_text = ", ".join(f"`{k}={v}`" for k, v in sorted(extra.items())) or "defaults"
    summary_lines = [
        f"- machine: {info['arch']}, {info['cpus']} CPUs, {info['cpu']}, Python {info['python']}"
        f" (load average after the run: {info['load']}; the machine is shared)",
        "- servers (local): "
        f"{server_versions(urls['rabbitmq'], urls['redis'], options.database_url)}; "
        f"libraries: {versions()}",
        "- database: PostgreSQL, a fresh database per run (kernel: asyncpg; plain_db: psycopg "
        "3 and psycopg_pool); brokers: "
        + ", ".join(f"{b} `{urls[b].replace('guest:guest@', '')}`" for b in brokers),
        f"- N={options.tasks} tasks per timed run (+{options.warmup} untimed warm-up on "
        f"fresh workers), {options.rounds} interleaved rounds (plain, plain_db, kernel, the "
        f"order rotated each round), {options.processes} worker processes x {options.threads} "
        f"threads on every side, kernel enqueues {options.batch} per transaction; kernel task "
        f"settings: {settings_text}; whole run {elapsed:.0f} s",
        "- ratios kernel/plain_db, the goal (medians; per round): "
        + ", ".join(
            f"{b} **{r['plain_db']:.2f}** ({round_ratios(samples[b], 'plain_db')})"
            for b, r in ratios.items()
        )
        + f" (goal >= {GOAL_RATIO})",
        "- ratios kernel/plain no-op, reported (medians; per round): "
        + ", ".join(
            f"{b} {r['plain']:.2f} ({round_ratios(samples[b], 'plain')})" for b, r in ratios.items()
        ),
        f"- verdict: {verdict}",
    ]
    print()
    print("\n".join(rows))
    print()
    print("\n".join(summary_lines))
    print(f"{info['date']} · {revision}")
    print(f"bench: {verdict}")
    if not options.no_record:
        key = (
            f"{revision}; {info['arch']}; {info['cpus']}; {info['cpu']}; {info['python']}; "
            f"{','.join(brokers)}; N={options.tasks}; P={options.processes}; "
            f"T={options.threads}; B={options.batch}; {settings_text}"
        )
        section = "\n".join(
            [
                f"## Tasks benchmark (`bench/tasks`) · {info['date']} · {revision}",
                "",
                f"<!-- bench-tasks-key: {key} -->",
                "Tasks end to end (first send/enqueue to last task done) through the kernel's "
                "outbox, relay and actor wrapper (`backplane worker`, a no-op task) against two "
                "plain dramatiq actors (`python -m dramatiq`) on the same broker, same worker "
                "shape: a no-op one, and one that marks its pre-inserted PostgreSQL row done "
                "once in a transaction of its own (the database work exactly-once needs); see "
                "`bench/tasks/run.py`. Goal (issue 16): tasks/s ratio kernel/plain_db >= 0.8 "
                "on RabbitMQ and on Redis.",
                "",
                *summary_lines,
                "",
                *rows,
            ]
        )
        record(section, key)
        print(f"bench: recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
