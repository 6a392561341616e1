"""Bulk enrolment from CSV: a header row naming ``user_id`` (and optionally ``cohort_id``),
one learner a row. Each row enrols in its own savepoint, so a bad row (a malformed id, an
enrolled learner, no seat left) is reported with its line and the others still go through."""

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


class RowResult(msgspec.Struct, kw_only=True):
    line: int
    user_id: str
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
    if "user_id" not in fields:
        raise EducationError(400, "the CSV needs a header row with a user_id column")
    unknown = set(fields) - {"user_id", "cohort_id"}
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
        raw = row.get("user_id", "")
        try:
            user_id = uuid.UUID(raw)
            cohort_id = uuid.UUID(row["cohort_id"]) if row.get("cohort_id") else None
        except ValueError:
            results.append(RowResult(line=line, user_id=raw, status="failed", detail="bad id"))
            continue
        try:
            async with kernel.db.begin_nested():
                made = await enrol(
                    kernel,
                    course,
                    user_id,
                    source="bulk",
                    cohort_id=cohort_id,
                    enrolled_by=caller_id(kernel),
                )
        except EducationError as error:
            results.append(RowResult(line=line, user_id=raw, status="failed", detail=str(error)))
            continue
        results.append(RowResult(line=line, user_id=raw, status="enrolled", enrolment_id=made.id))
    enrolled = sum(1 for r in results if r.status == "enrolled")
    return BulkResult(enrolled=enrolled, failed=len(results) - enrolled, rows=results)
