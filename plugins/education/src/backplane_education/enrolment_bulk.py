"""Bulk enrolment from CSV: a header row naming ``user_id`` or ``email`` (and optionally
``cohort_id``), one member of the tenant a row. Each row enrols in its own savepoint, so a bad
row (a malformed id, nobody of the tenant, an enrolled learner, no seat left) is reported with
its line and the others still go through."""

from __future__ import annotations

import csv
import io
import uuid

import msgspec

from backplane import Kernel
from backplane_education.common import EducationError, caller_id
from backplane_education.enrolment import enrol
from backplane_education.models import Course
from backplane_education.settings import EducationSettings


async def member_named(kernel: Kernel, user_id: uuid.UUID | None, email: str | None) -> uuid.UUID:
    """The user id of the tenant's member named by ``user_id`` or ``email`` (404 when
    nobody of the tenant is)."""
    if (user_id is None) == (email is None):
        raise EducationError(400, "name the learner by user_id or by email")
    try:
        found = await kernel.member(user_id=user_id, email=email)
    except ValueError as error:
        raise EducationError(400, str(error)) from None
    if found is None:
        raise EducationError(404, "no member of this tenant with that user_id or email")
    return found.user_id


class RowResult(msgspec.Struct, kw_only=True):
    line: int
    learner: str
    """The row's user_id or email, as sent."""
    status: str
    """``enrolled`` or ``failed``."""
    detail: str = ""
    enrolment_id: uuid.UUID | None = None


class BulkResult(msgspec.Struct, kw_only=True):
    enrolled: int
    failed: int
    rows: list[RowResult]


def parse_csv(body: bytes, limits: EducationSettings) -> list[tuple[int, dict[str, str]]]:
    """The rows, with their line numbers; 4xx for a body that is not a usable CSV."""
    if len(body) > limits.max_bulk_csv_bytes:
        raise EducationError(
            413,
            f"the CSV is larger than {limits.max_bulk_csv_bytes} bytes "
            "(education.max_bulk_csv_bytes)",
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EducationError(400, "the CSV must be UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "user_id" not in fields and "email" not in fields:
        raise EducationError(400, "the CSV needs a header row with a user_id or email column")
    unknown = set(fields) - {"user_id", "email", "cohort_id"}
    if unknown:
        raise EducationError(400, f"unknown CSV columns: {', '.join(sorted(unknown))}")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            if len(rows) >= limits.max_bulk_rows:
                raise EducationError(
                    413,
                    f"the CSV has more than {limits.max_bulk_rows} rows (education.max_bulk_rows)",
                )
            clean = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
            if any(clean.values()):
                rows.append((reader.line_num, clean))
    except csv.Error as error:
        raise EducationError(400, f"the CSV is malformed: {error}") from None
    if not rows:
        raise EducationError(400, "the CSV has no rows")
    return rows


async def enrol_csv(kernel: Kernel, course: Course, body: bytes) -> BulkResult:
    limits: EducationSettings = kernel.plugin_settings
    results: list[RowResult] = []
    for line, row in parse_csv(body, limits):
        raw = row.get("user_id") or row.get("email") or ""
        try:
            user_id = uuid.UUID(row["user_id"]) if row.get("user_id") else None
            cohort_id = uuid.UUID(row["cohort_id"]) if row.get("cohort_id") else None
        except ValueError:
            results.append(RowResult(line=line, learner=raw, status="failed", detail="bad id"))
            continue
        email = None if user_id is not None else row.get("email") or None
        try:
            learner = await member_named(kernel, user_id, email)
            async with kernel.db.begin_nested():
                made = await enrol(
                    kernel,
                    course,
                    learner,
                    source="bulk",
                    cohort_id=cohort_id,
                    enrolled_by=caller_id(kernel),
                )
        except EducationError as error:
            results.append(RowResult(line=line, learner=raw, status="failed", detail=str(error)))
            continue
        results.append(RowResult(line=line, learner=raw, status="enrolled", enrolment_id=made.id))
    enrolled = sum(1 for r in results if r.status == "enrolled")
    return BulkResult(enrolled=enrolled, failed=len(results) - enrolled, rows=results)
