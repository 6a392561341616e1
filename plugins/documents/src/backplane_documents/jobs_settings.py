"""Bulk job limits: ``[plugins.documents.jobs]`` in the TOML file, or
``BACKPLANE_PLUGIN__DOCUMENTS__JOBS__<FIELD>`` variables (``DocumentsSettings.jobs``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

MIB = 1024 * 1024


class JobSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How large a bulk job may be and how it is cut into checkpointed chunks."""

    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 256 * MIB
    """Largest CSV / JSON lines upload (413 beyond, nothing kept)."""
    max_rows: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    """Most rows one job may have (413 beyond)."""
    max_columns: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    max_line_bytes: Annotated[int, msgspec.Meta(ge=1024)] = MIB
    """A longer JSON line is that row's error."""
    chunk_rows: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 250
    """Rows per chunk: a chunk is one task and one transaction (its outcomes, its usage and
    its stored documents commit together), so a worker killed mid-job redoes one chunk. A
    chunk also costs about 25 ms of the server's CPU whatever its size (its task, metering,
    chunk file, progress event): 250 rows instead of 100 took the server's share from 0.50 to
    0.34 ms per invoice (``bench/documents``). On SQLite a job's chunks hold the write lock
    one after another for the whole job, whatever their size (other writes waited 1-5 s
    during a 3,000-row job with 100 rows as with 250: see the plugin's README)."""
    parallel_chunks: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Chunks of one job queued at once (PostgreSQL): other tenants' tasks are not starved by a
    big job. On SQLite one at a time, each rendered ahead while the one before it commits
    (a task holds SQLite's write lock until it commits: parallel chunks would only wait)."""
    error_rate_min_rows: Annotated[int, msgspec.Meta(ge=1)] = 100
    """A job's ``max_error_rate`` is judged once this many rows (or all) were processed."""
