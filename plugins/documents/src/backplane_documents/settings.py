"""The plugin's settings: ``[plugins.documents]`` in the TOML file or
``BACKPLANE_PLUGIN__DOCUMENTS__<FIELD>`` variables, validated when the kernel starts."""

from __future__ import annotations

from typing import Annotated

import msgspec

from backplane_documents.jobs_settings import JobSettings
from backplane_documents.processing.limits import ProcessingLimits
from backplane_documents.rendering import RenderLimits

MIB = 1024 * 1024


class DocumentsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits on templates and on each render; every breach is a clear 4xx (or a bulk job's
    per-row error) naming the setting."""

    render_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    """Wall-clock time one render may take; the worker process is killed past it."""
    max_output_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 20 * MIB
    """Largest document a render may produce."""
    max_pages: Annotated[int, msgspec.Meta(ge=1)] = 200
    """Most pages a PDF may have (DOCX: explicit page breaks + 1)."""
    render_memory_mb: Annotated[int, msgspec.Meta(ge=0)] = 1024
    """Address-space limit of each render worker process, in MiB (0: none)."""
    render_workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Render worker processes per server process: renders at once beyond it wait."""
    prestart_workers: bool = False
    """Start the render workers with the server, so that the first renders do not wait about
    half a second each for one (off by default: every app start, tests' too, would pay it)."""
    max_template_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 2 * MIB
    """Largest template source (a .docx: also its unpacked size may be at most 10 times it)."""
    max_versions: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """Most versions one template may have."""
    # -- processing (extraction of text and fields) --------------------------------------
    processing: ProcessingLimits = msgspec.field(default_factory=ProcessingLimits)
    """Limits of one extraction (size, pages, pixels, OCR time and memory)."""
    processing_chunk_pages: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Pages of a PDF one task of a bulk extraction job reads: a worker's death costs at most
    one chunk's work (pdfium opens even a 10,000-page PDF in milliseconds)."""
    processing_parallel_chunks: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    """Chunks of one bulk extraction job that may run at once (each finished chunk enqueues
    the next of its chain). Raise it on PostgreSQL with several workers; on SQLite a task
    holds the database's write lock while it runs, so parallel chunks only queue (and a
    queue longer than SQLite's busy timeout fails)."""

    jobs: JobSettings = msgspec.field(default_factory=JobSettings)
    """Bulk jobs: ``BACKPLANE_PLUGIN__DOCUMENTS__JOBS__<FIELD>`` (see :class:`JobSettings`)."""

    @property
    def limits(self) -> RenderLimits:
        """The render limits these settings give."""
        return RenderLimits(
            timeout_s=self.render_timeout_s,
            max_output_bytes=self.max_output_bytes,
            max_pages=self.max_pages,
            memory_bytes=self.render_memory_mb * MIB,
            workers=self.render_workers,
        )
