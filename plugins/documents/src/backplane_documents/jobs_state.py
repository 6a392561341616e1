"""The life of a bulk job, as a pure state machine the tasks, the routes and the CLI share.

::

    queued ──▶ running ──▶ assembling ──▶ succeeded
       │          │             │
       └──────────┴─────────────┴──▶ failed | quota_exceeded | cancelled

A job is cut into chunks; each chunk's outcomes (one per row, done or failed) are written in
the transaction that runs the chunk, so a worker killed mid-chunk leaves nothing of it and the
chunk runs again. What happens after a chunk is decided here, from the counters alone: the
next status, and whether the error rate is past the caller's limit. Keeping it pure keeps
the rules testable without a database, and the same wherever a chunk ran.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal[
    "queued", "running", "assembling", "succeeded", "failed", "quota_exceeded", "cancelled"
]
ACTIVE: tuple[Status, ...] = ("queued", "running", "assembling")
TERMINAL: tuple[Status, ...] = ("succeeded", "failed", "quota_exceeded", "cancelled")
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    "queued": ("running", "assembling", "failed", "quota_exceeded", "cancelled"),
    "running": ("running", "assembling", "failed", "quota_exceeded", "cancelled"),
    "assembling": ("succeeded", "failed", "cancelled"),
    "succeeded": (),
    "failed": (),
    "quota_exceeded": (),
    "cancelled": (),
}


class TransitionError(ValueError):
    """A job cannot go from its status to the one asked (cancelling a finished job, say)."""


class JobCounters(msgspec.Struct, frozen=True, kw_only=True):
    """What a job's row says about its progress."""

    status: Status
    total: int
    done: int = 0
    failed: int = 0
    chunks_total: int
    chunks_done: int = 0
    max_error_rate: float | None = None
    """Fail the job once more than this fraction of the rows processed failed."""
    min_rows_for_rate: int = 100
    """The error rate is judged only once this many rows (or every row) were processed."""
    error: str | None = None

    @property
    def processed(self) -> int:
        return self.done + self.failed

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else round(100 * self.processed / self.total, 1)


def move(job: JobCounters, to: Status, error: str | None = None) -> JobCounters:
    """``job`` with status ``to``; :class:`TransitionError` if its status does not lead there."""
    if to not in TRANSITIONS[job.status]:
        raise TransitionError(f"a {job.status} job cannot become {to}")
    return msgspec.structs.replace(job, status=to, error=error if error is not None else job.error)


def error_rate_exceeded(job: JobCounters) -> str | None:
    """Why the job fails for its error rate, or None while it is within the limit (or too
    few rows were processed to judge, unless every row was)."""
    limit = job.max_error_rate
    if limit is None or job.processed == 0:
        return None
    if job.processed < min(job.min_rows_for_rate, job.total):
        return None
    rate = job.failed / job.processed
    if rate <= limit:
        return None
    return (
        f"{job.failed} of {job.processed} rows failed ({rate:.1%}), above the job's "
        f"max_error_rate of {limit:.1%}"
    )


def after_chunk(job: JobCounters, done: int, failed: int, quota: str | None = None) -> JobCounters:
    """The job once a chunk of it added ``done`` documents and ``failed`` row errors.

    ``quota`` is the refusal's message when the tenant's quota stopped the chunk: the job ends
    ``quota_exceeded`` (rows not reached keep no outcome). A job that ended meanwhile (failed
    by another chunk, cancelled) only counts what the chunk did."""
    counted = msgspec.structs.replace(
        job,
        done=job.done + done,
        failed=job.failed + failed,
        chunks_done=job.chunks_done + 1,
    )
    if counted.processed > counted.total or counted.chunks_done > counted.chunks_total:
        raise ValueError("a chunk was counted twice: more outcomes than rows")
    if job.status not in ("queued", "running"):
        return counted
    if quota is not None:
        return move(counted, "quota_exceeded", quota)
    failing = error_rate_exceeded(counted)
    if failing is not None:
        return move(counted, "failed", failing)
    if counted.chunks_done == counted.chunks_total:
        return move(counted, "assembling")
    return move(counted, "running")
