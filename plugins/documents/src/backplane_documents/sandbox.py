"""Renders run in worker processes that can be killed: a thread cannot be stopped, so a
template that loops, or runs away with memory, would otherwise hold a server thread for good.

A :class:`RenderPool` keeps up to ``size`` workers (:mod:`backplane_documents.sandbox_worker`),
each serving one job (a batch of rows of one template) at a time over its stdin/stdout
(length-prefixed msgpack frames, a reply per row). A worker starts with an address-space limit
(``RLIMIT_AS``), no core dumps, a throwaway working directory and every proxy variable pointing
at a closed local port (the typst compiler honours them: a package import cannot download).
The caller waits at most the render time limit for each row's reply, then kills the worker:
that row fails (a limit), and the rows after it go to a fresh worker. Workers are retired once
their peak memory passes ``recycle_memory_bytes`` (or after ``max_jobs`` rows), so that what a
large document made a worker hold is given back; typst's own caches stay flat (measured: a
worker's resident memory stays at about 110 MiB over 5,000 invoices), and a worker's start
costs about 0.1 s of CPU, which retiring every 500 rows made a noticeable share of bulk jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import msgspec

from backplane_documents.errors import RenderError
from backplane_documents.sandbox_protocol import HEADER, Job, Reply, read_exactly, write_frame

__all__ = ["Job", "RenderPool", "Reply", "close_pools", "pool_for"]

CLOSED_PROXY = "http://127.0.0.1:9"
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)
KEPT_VARIABLES = frozenset(
    {"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "TMPDIR", "TZ", "HOME"}
)
STARTUP_TIMEOUT_S = 60.0
"""How long a new worker may take to import the engines (a loaded machine, a cold disk)."""
RECYCLE_MEMORY_BYTES = 512 * 1024 * 1024
"""A worker whose peak resident memory passed this is retired after its job (at most half
the address-space limit, when there is one)."""
_DECODER = msgspec.msgpack.Decoder(Reply)


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        # Only what Python needs to start: no secrets (BACKPLANE_SECRET_KEY, database URLs)
        # in a process that runs tenants' templates, even though none can read its environment.
        env = {k: v for k, v in os.environ.items() if k in KEPT_VARIABLES or k.startswith("LC_")}
        env.update(dict.fromkeys(PROXY_VARIABLES, CLOSED_PROXY))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backplane_documents.sandbox_worker", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.jobs = 0
        """Rows rendered."""
        self.peak_memory_bytes = 0
        self.ready = False

    def wait_ready(self) -> None:
        """Wait for the worker's empty "ready" frame (engines imported, typst's compiler and
        fonts loaded): its start-up never counts against a render's time limit."""
        if self.ready:
            return
        assert self.process.stdout is not None
        out = self.process.stdout.fileno()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            (size,) = HEADER.unpack(read_exactly(out, HEADER.size, deadline))
            read_exactly(out, size, deadline)
        except (TimeoutError, EOFError, OSError):
            self.kill()
            raise RenderError(
                f"the renderer did not start within {STARTUP_TIMEOUT_S:g} s", kind="limit"
            ) from None
        self.ready = True

    def run(self, job: Job, timeout_s: float, replies: list[Reply]) -> None:
        """Send ``job``, append each row's reply to ``replies`` as it comes; raise (with the
        replies so far kept) when a row takes longer than ``timeout_s`` or the worker dies."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.wait_ready()
        write_frame(self.process.stdin.fileno(), msgspec.msgpack.encode(job))
        out = self.process.stdout.fileno()
        for _ in job.rows:
            deadline = time.monotonic() + timeout_s
            (size,) = HEADER.unpack(read_exactly(out, HEADER.size, deadline))
            reply = _DECODER.decode(read_exactly(out, size, deadline))
            self.jobs += 1
            if reply.peak_memory_kib:  # given with a job's last reply
                self.peak_memory_bytes = reply.peak_memory_kib * 1024
            replies.append(reply)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _stopped(returncode: int | None) -> str:
    """Why a worker died mid-job: past its address-space limit, a memory allocation fails
    and the engine aborts (SIGABRT, or MemoryError reported before exiting)."""
    if returncode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGKILL, 1):
        return "rendering ran out of memory (documents.render_memory_mb)"
    return f"the renderer stopped unexpectedly (exit status {returncode})"


class RenderPool:
    """Up to ``size`` sandboxed workers shared by every thread of the process."""

    def __init__(
        self,
        size: int,
        memory_bytes: int,
        max_jobs: int = 10_000,
        recycle_memory_bytes: int | None = None,
    ) -> None:
        self.size, self.memory_bytes, self.max_jobs = size, memory_bytes, max_jobs
        if recycle_memory_bytes is None:
            recycle_memory_bytes = RECYCLE_MEMORY_BYTES
            if memory_bytes:
                recycle_memory_bytes = min(recycle_memory_bytes, memory_bytes // 2)
        self.recycle_memory_bytes = recycle_memory_bytes
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def run(self, job: Job, timeout_s: float) -> list[Reply]:
        """Render each row of ``job`` in a worker: a reply per row, in order. A row that takes
        longer than ``timeout_s``, or whose worker dies (its memory limit, a crash), gets a
        failed reply (kind ``limit``) and the rows after it go to a new worker. RenderError
        only when no worker can be had (shutting down, or one that does not start)."""
        replies: list[Reply] = []
        while len(replies) < len(job.rows):
            rest = job.rows[len(replies) :]
            self._run_once(msgspec.structs.replace(job, rows=rest), timeout_s, replies)
        return replies

    def _run_once(self, job: Job, timeout_s: float, replies: list[Reply]) -> None:
        """One worker's go at ``job``: its replies appended, up to the first failed row."""
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RenderError("the renderer is shutting down")
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self.memory_bytes)
            try:
                worker.run(job, timeout_s, replies)
            except TimeoutError:
                worker.kill()
                message = f"rendering took longer than {timeout_s:g} s (documents.render_timeout_s)"
                replies.append(Reply(ok=False, error=message, kind="limit"))
                return
            except (EOFError, OSError):
                worker.kill()
                replies.append(
                    Reply(ok=False, error=_stopped(worker.process.returncode), kind="limit")
                )
                return
            except BaseException:
                worker.kill()
                raise
            with self._lock:
                retire = (
                    worker.jobs >= self.max_jobs
                    or worker.peak_memory_bytes > self.recycle_memory_bytes
                )
                if self._closed or retire or len(self._idle) >= self.size:
                    worker.kill()
                else:
                    self._idle.append(worker)

    def warm(self) -> None:
        """Start the pool's workers now (each imports the engines, about half a second), so
        that the first renders do not wait for them."""
        with self._lock:
            missing = 0 if self._closed else self.size - len(self._idle)
        started = [_Worker(self.memory_bytes) for _ in range(max(0, missing))]
        for worker in started:
            worker.wait_ready()
        with self._lock:
            if self._closed:
                for worker in started:
                    worker.kill()
            else:
                self._idle.extend(started)

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when their job ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_pools: dict[tuple[int, int], RenderPool] = {}
_pools_lock = threading.Lock()


def pool_for(size: int, memory_bytes: int) -> RenderPool:
    """The process's pool for these limits (one per setting combination, made on first use)."""
    with _pools_lock:
        pool = _pools.get((size, memory_bytes))
        if pool is None or pool._closed:
            pool = _pools[(size, memory_bytes)] = RenderPool(size, memory_bytes)
        return pool


def _forget_pools_in_child() -> None:
    """A forked process (a task worker forked after a render) must not share its parent's
    workers: their pipes would carry two processes' jobs. It starts its own on first use."""
    global _pools_lock  # noqa: PLW0603 - a lock held at fork time stays held in the child
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)


@atexit.register
def close_pools() -> None:
    """Stop every worker (at exit, and in the plugin's ``shutdown`` hook)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
