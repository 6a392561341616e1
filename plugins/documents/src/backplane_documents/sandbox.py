"""Renders run in worker processes that can be killed: a thread cannot be stopped, so a
template that loops, or runs away with memory, would otherwise hold a server thread for good.

A :class:`RenderPool` keeps up to ``size`` workers (``python -m backplane_documents.sandbox``),
each serving one job at a time over its stdin/stdout (length-prefixed msgpack frames). A worker
starts with an address-space limit (``RLIMIT_AS``), no core dumps, a throwaway working
directory and every proxy variable pointing at a closed local port (the typst compiler honours
them: a package import cannot download). The caller waits at most the render time limit, then
kills the worker and raises :class:`RenderError`; a new worker replaces it on the next job.
Workers are recycled after ``max_jobs`` jobs, so caches cannot grow without bound.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

import msgspec

from backplane_documents.errors import RenderError

CLOSED_PROXY = "http://127.0.0.1:9"
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)
HEADER = struct.Struct("!I")


class Job(msgspec.Struct, array_like=True):
    engine: str
    source: bytes
    data_json: str
    max_output_bytes: int
    max_pages: int
    preview: bool = False


class Reply(msgspec.Struct, array_like=True):
    ok: bool
    content: bytes = b""
    pages: int = 0
    error: str = ""
    kind: str = "template"


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
        env.update(dict.fromkeys(PROXY_VARIABLES, CLOSED_PROXY))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backplane_documents.sandbox", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.jobs = 0

    def run(self, job: Job, timeout_s: float) -> Reply:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.jobs += 1
        _write_frame(self.process.stdin.fileno(), msgspec.msgpack.encode(job))
        deadline = time.monotonic() + timeout_s
        out = self.process.stdout.fileno()
        (size,) = HEADER.unpack(_read_exactly(out, HEADER.size, deadline))
        return msgspec.msgpack.decode(_read_exactly(out, size, deadline), type=Reply)

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

    def __init__(self, size: int, memory_bytes: int, max_jobs: int = 500) -> None:
        self.size, self.memory_bytes, self.max_jobs = size, memory_bytes, max_jobs
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def run(self, job: Job, timeout_s: float) -> Reply:
        """Run ``job`` in a worker; RenderError when it takes longer than ``timeout_s`` or the
        worker dies (killed by its memory limit, or crashed)."""
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RenderError("the renderer is shutting down")
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self.memory_bytes)
            try:
                reply = worker.run(job, timeout_s)
            except TimeoutError:
                worker.kill()
                raise RenderError(
                    f"rendering took longer than {timeout_s:g} s (documents.render_timeout_s)",
                    kind="limit",
                ) from None
            except (EOFError, OSError):
                worker.kill()
                raise RenderError(_stopped(worker.process.returncode), kind="limit") from None
            except BaseException:
                worker.kill()
                raise
            with self._lock:
                if self._closed or worker.jobs >= self.max_jobs:
                    worker.kill()
                else:
                    self._idle.append(worker)
            return reply

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


@atexit.register
def close_pools() -> None:
    """Stop every worker (at exit, and in the plugin's ``shutdown`` hook)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


# --- the worker side -------------------------------------------------------------------------


def _limit_self(memory_bytes: int) -> None:
    import resource
    import tempfile

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.chdir(tempfile.mkdtemp(prefix="documents-render-"))


def execute(job: Job) -> Reply:
    """Render one job (in the worker): the output, checked against its limits."""
    import json

    from backplane_documents.engines.docx import render_docx
    from backplane_documents.engines.html import render_html
    from backplane_documents.engines.typst_pdf import render_typst

    try:
        if job.engine == "typst":
            content, pages = render_typst(job.source, job.data_json, preview=job.preview)
        elif job.engine == "html":
            content, pages = render_html(
                job.source, json.loads(job.data_json), job.max_output_bytes
            )
        elif job.engine == "docx":
            content, pages = render_docx(
                job.source, json.loads(job.data_json), job.max_output_bytes
            )
        else:
            raise RenderError(f"unknown engine {job.engine!r}")
        if len(content) > job.max_output_bytes:
            raise RenderError(
                f"output of {len(content)} bytes is larger than {job.max_output_bytes} "
                "(documents.max_output_bytes)",
                kind="limit",
            )
        if pages > job.max_pages and not job.preview:
            raise RenderError(
                f"{pages} pages, more than {job.max_pages} (documents.max_pages)", kind="limit"
            )
        return Reply(ok=True, content=content, pages=pages)
    except RenderError as error:
        return Reply(ok=False, error=str(error), kind=error.kind)
    except MemoryError:
        return Reply(
            ok=False, error="rendering ran out of memory (documents.render_memory_mb)", kind="limit"
        )
    except Exception as error:  # noqa: BLE001 - reported to the caller, the worker lives on
        return Reply(ok=False, error=f"{type(error).__name__}: {error}")


def serve(memory_bytes: int) -> None:
    """The worker's loop: one job in, one reply out, until stdin closes."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stray prints must not corrupt the protocol
    _limit_self(memory_bytes)
    import typst  # noqa: F401 - the engines, imported once before any job

    while True:
        try:
            (size,) = HEADER.unpack(_read_exactly(protocol_in, HEADER.size, None))
            job = msgspec.msgpack.decode(_read_exactly(protocol_in, size, None), type=Job)
        except EOFError:
            return
        _write_frame(protocol_out, msgspec.msgpack.encode(execute(job)))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
