"""A render worker process (``python -m backplane_documents.sandbox_worker MEMORY_BYTES``):
it limits itself, loads the engines once, says it is ready, then renders one job (a batch of
rows, a reply each) at a time until its stdin closes. Started and killed by
:mod:`backplane_documents.sandbox`."""

from __future__ import annotations

import os
import resource
import sys

import msgspec

from backplane_documents.errors import RenderError
from backplane_documents.sandbox_protocol import HEADER, Job, Reply, read_exactly, write_frame


def _limit_self(memory_bytes: int) -> None:
    import tempfile

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.chdir(tempfile.mkdtemp(prefix="documents-render-"))


def execute(job: Job, data_json: str) -> Reply:
    """Render one row of a job (in the worker): the output, checked against its limits."""
    import json

    from backplane_documents.engines.docx import render_docx
    from backplane_documents.engines.html import render_html
    from backplane_documents.engines.typst_pdf import render_typst

    try:
        if job.engine == "typst":
            content, pages = render_typst(job.source, data_json, preview=job.preview)
        elif job.engine == "html":
            content, pages = render_html(job.source, json.loads(data_json), job.max_output_bytes)
        elif job.engine == "docx":
            content, pages = render_docx(job.source, json.loads(data_json), job.max_output_bytes)
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


def peak_memory_kib() -> int:
    """This process's peak resident memory since it started (KiB): ``VmHWM`` on Linux, which a
    new program starts afresh, unlike ``ru_maxrss``, which keeps the peak of the process that
    forked the worker (a large server would have every worker retired after its first job)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def serve(memory_bytes: int) -> None:
    """The worker's loop: one job in, a reply per row out, until stdin closes."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stray prints must not corrupt the protocol
    _limit_self(memory_bytes)
    # The engines, imported (and typst's compiler made) once, before any job.
    import docxtpl  # noqa: F401 - loaded now rather than by the first DOCX job
    import pypdfium2  # noqa: F401 - page counts of PDFs

    from backplane_documents.engines import docx, html, typst_pdf

    del docx, html
    typst_pdf._worker_compiler()
    write_frame(protocol_out, b"")  # ready

    encoder = msgspec.msgpack.Encoder()
    while True:
        try:
            (size,) = HEADER.unpack(read_exactly(protocol_in, HEADER.size, None))
            job = msgspec.msgpack.decode(read_exactly(protocol_in, size, None), type=Job)
        except EOFError:
            return
        last = len(job.rows) - 1
        for index, data_json in enumerate(job.rows):
            reply = execute(job, data_json)
            if index == last:  # the pool decides on retiring a worker once its job is done
                reply.peak_memory_kib = peak_memory_kib()
            write_frame(protocol_out, encoder.encode(reply))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
