"""Helpers shared by benchmark scripts: machine facts, the commit, recording into RESULTS.md,
ports, and server processes that never outlive the run.

Only ``bench/inference/run.py`` uses this module so far; the older scripts keep their own copies.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


class BenchError(SystemExit):
    """A clear, fatal problem of the run (exits with its message)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


# -- machine and commit ---------------------------------------------------------------------
def command_output(args: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        ).stdout.strip()
    except OSError:
        return "?"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    return {
        "date": command_output(["date", "-u"]),
        "arch": command_output(["uname", "-m"]),
        "kernel": command_output(["uname", "-r"]),
        "cpus": str(os.cpu_count() or "?"),
        "cpu": cpu,
        "memory": memory,
        "python": sys.version.split()[0],
        "load": load_average(),
    }


def git_revision(paths: Sequence[str]) -> str:
    """Short HEAD, with ``+ uncommitted changes`` when any of ``paths`` differs from it."""
    sha = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths])
    return f"{sha}{' + uncommitted changes' if dirty else ''}"


def record(section: str, marker: str) -> None:
    """Append ``section`` (a ``## `` block) to RESULTS.md, replacing earlier ones with ``marker``.

    Other sections are kept byte for byte; only the end of the file changes otherwise.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    head, runs = parts[0], parts[1:]
    runs = [r.rstrip() for r in runs if marker not in r]
    runs.append(section.rstrip())
    RESULTS.write_text("\n\n".join([head.rstrip(), *runs]) + "\n")


# -- databases ------------------------------------------------------------------------------
@contextmanager
def fresh_postgres_database(url: str, prefix: str) -> Iterator[str]:
    """Create a throw-away database on the server of ``url``; yield its URL; drop it after.

    The database named in ``url`` is only used to connect for ``CREATE``/``DROP DATABASE``.
    """
    import asyncio
    import uuid

    import asyncpg  # type: ignore[import-untyped]

    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        raise BenchError(f"--database-url must be postgresql://..., got {scheme}://")
    base, _, query = rest.partition("?")
    server_part = base.rsplit("/", 1)[0] if "/" in base else base
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    plain = f"postgresql://{base}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(plain, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"cannot create a database on {server_part}: {exc}") from None
    try:
        yield f"postgresql://{server_part}/{name}" + (f"?{query}" if query else "")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- ports ----------------------------------------------------------------------------------
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    """Exit with a clear message if something already listens on (or holds) ``port``."""
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                owner = command_output(["ss", "-ltnpH", f"sport = :{port}"]) or "?"
                raise BenchError(
                    f"port {port} on {HOST} (for {what}) is already taken: {owner}; "
                    "stop that process or choose other ports (--base-port)"
                ) from None
            raise


# -- processes ------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, its waited-for children and its live
    descendants (the worker processes of ``backplane serve --workers N``), from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in _children(pid):
        total += cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _stop_group(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM the process group this run created, SIGKILL it after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    # Children left behind in the group (workers) go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def log_tail(log: IO[bytes], chars: int = 4000) -> str:
    """The end of a server's log, read through a new file description: seeking the shared one
    would move the server's write position."""
    log.flush()
    with open(f"/proc/self/fd/{log.fileno()}", "rb") as reader:
        return reader.read().decode(errors="replace")[-chars:]


@contextmanager
def server(
    name: str,
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    ready: Callable[[], bool],
    ports: Sequence[int],
    start_timeout_s: float = 90,
    stop_timeout_s: float = 15,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group; wait until ``ready()``; stop the group on exit.

    ``ports`` must be free before the start (a clear error otherwise), so that a stray server
    already listening there can never answer in place of this one.
    """
    for port in ports:
        ensure_port_free(port, name)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        list(args),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise BenchError(
                    f"{name} ({' '.join(args)}) exited with {process.returncode}:\n" + log_tail(log)
                )
            with contextlib.suppress(Exception):
                if ready():
                    break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{name} did not become ready in {start_timeout_s:g} s:\n" + log_tail(log)
                )
            time.sleep(0.2)
        process.log = log  # type: ignore[attr-defined]
        yield process
        if process.poll() is not None:
            raise BenchError(
                f"{name} died during the run ({process.returncode}):\n" + log_tail(log)
            )
    finally:
        _stop_group(process, stop_timeout_s)
        log.close()


def exit_on_sigterm() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so that ``finally`` blocks stop the servers."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(f"bench: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
