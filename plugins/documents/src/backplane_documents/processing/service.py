"""Extractions in the database: run one, store it, show it.

``extract`` (pure, CPU-bound, may start the OCR process) runs in a worker thread so the event
loop keeps serving; everything else happens in the caller's transaction, so a refusal (a
quota, a bad rule) leaves no row and no usage behind.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_documents.processing.classify import ClassifierSpec, classify, full_text
from backplane_documents.processing.extract import extract
from backplane_documents.processing.fields import extract_fields
from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.models import DocumentExtraction, ExtractedPage
from backplane_documents.processing.pages import count_pages
from backplane_documents.processing.results import Extraction, Method, PageText
from backplane_documents.processing.rules import RuleSet, parse_rules

PAGES_METER = "documents.pages_processed"
"""One per page extracted (text layer, OCR or DOCX); a hard quota on it answers 429."""


class ExtractionOut(msgspec.Struct, kw_only=True):
    """An extraction as the API shows it."""

    id: uuid.UUID
    file_id: uuid.UUID
    name: str
    media_type: str
    status: str
    pages: int
    done_pages: int
    job_id: uuid.UUID | None
    template_id: uuid.UUID | None
    version_number: int | None
    fields: dict[str, Any] | None
    field_errors: dict[str, str] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    label: str | None = None
    """The class a user set (``PUT .../label``): what the documents trainer learns from."""
    classification: dict[str, Any] | None = None
    """The tenant model's answer when the request named one (``classify``)."""
    text: list[PageText] | None = None
    """Per page (absent from listings)."""


def extraction_out(row: DocumentExtraction, pages: list[ExtractedPage] | None) -> ExtractionOut:
    return ExtractionOut(
        id=row.id,
        file_id=row.file_id,
        name=row.name,
        media_type=row.media_type,
        status=row.status,
        pages=row.pages,
        done_pages=row.done_pages,
        job_id=row.job_id,
        template_id=row.template_id,
        version_number=row.version_number,
        fields=row.fields,
        field_errors=row.field_errors,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        label=row.label,
        classification=row.classification,
        text=None if pages is None else [page_text(p) for p in pages],
    )


def page_text(row: ExtractedPage) -> PageText:
    return PageText(
        number=row.number,
        text=row.text,
        method=cast(Method, row.method),  # only the three methods are ever stored
        tables=row.tables,
        confidence=row.confidence,
    )


def page_rows(extraction_id: uuid.UUID, pages: list[PageText]) -> list[ExtractedPage]:
    return [
        ExtractedPage(
            extraction_id=extraction_id,
            number=page.number,
            text=page.text,
            method=page.method,
            confidence=page.confidence,
            tables=page.tables,
        )
        for page in pages
    ]


class Target(msgspec.Struct, frozen=True):
    """A template's schema and the rules that fill it (structured extraction)."""

    template_id: uuid.UUID
    version_number: int
    schema: list[dict[str, Any]]
    rules: RuleSet


async def find_target(
    db: AsyncSession, template_id: uuid.UUID | None, version: int | None, rules: Any
) -> Target | None:
    """The template version whose field schema the rules fill; None without a template.
    TemplateRequestError 404 for another tenant's or a missing template; ValueError for
    rules that are invalid or name fields the schema lacks."""
    if template_id is None:
        if rules:
            raise ValueError("rules need a template_id: they fill a template's fields")
        return None
    from backplane_documents.fields import parse_schema
    from backplane_documents.templates import find_template, find_version

    template = await find_template(db, template_id)
    found = await find_version(db, template, version)
    parsed = parse_rules(rules or {})
    names = {spec.name for spec in parse_schema(found.field_schema)}
    unknown = sorted(set(parsed) - names)
    if unknown:
        raise ValueError(f"rules name fields template {template_id} does not have: {unknown}")
    return Target(template.id, found.number, list(found.field_schema), parsed)


def apply_target(extraction: Extraction, target: Target) -> tuple[dict[str, Any], dict[str, str]]:
    from backplane_documents.fields import parse_schema

    result = extract_fields(extraction, target.rules, parse_schema(target.schema))
    return result.values, result.errors


async def extract_stored(
    kernel: Any,
    file_id: uuid.UUID,
    data: bytes,
    *,
    name: str,
    media_type: str,
    limits: ProcessingLimits,
    target: Target | None,
    ocr: bool,
    user_id: uuid.UUID | None,
    classifier: ClassifierSpec | None = None,
) -> tuple[DocumentExtraction, list[ExtractedPage]]:
    """Extract ``data`` (the bytes of kernel file ``file_id``), meter its pages, store it.
    ExtractionError for a document that cannot be read; QuotaExceeded (429) when the pages
    would cross the tenant's hard limit on ``documents.pages_processed``."""
    expected = count_pages(data, media_type, limits)
    await kernel.usage.record(PAGES_METER, expected)  # a spent quota stops before the work
    extraction = await asyncio.to_thread(extract, data, media_type, limits, ocr=ocr)
    if len(extraction.pages) != expected:  # DOCX: page breaks found only by reading it
        await kernel.usage.record(PAGES_METER, len(extraction.pages) - expected)
    fields, errors = apply_target(extraction, target) if target else (None, None)
    classification = None
    if classifier is not None:  # errors of the model runtime answer the request (404/400/429)
        found = await classify(kernel, classifier, full_text(extraction.pages))
        classification = msgspec.to_builtins(found)
    now = datetime.now(UTC).replace(microsecond=0)
    row = DocumentExtraction(
        id=uuid.uuid4(),
        file_id=file_id,
        name=name,
        media_type=media_type,
        status="done",
        pages=len(extraction.pages),
        done_pages=len(extraction.pages),
        template_id=target.template_id if target else None,
        version_number=target.version_number if target else None,
        rules=msgspec.to_builtins(target.rules) if target else None,
        fields=fields,
        field_errors=errors,
        created_by=user_id,
        created_at=now,
        finished_at=now,
        classifier=msgspec.to_builtins(classifier) if classifier else None,
        classification=classification,
    )
    kernel.db.add(row)
    await kernel.db.flush()
    pages = page_rows(row.id, extraction.pages)
    kernel.db.add_all(pages)
    await kernel.db.flush()
    return row, pages


async def find_extraction(db: AsyncSession, extraction_id: uuid.UUID) -> DocumentExtraction:
    """The tenant's extraction (the session sees no other tenant's); LookupError otherwise."""
    row = await db.scalar(select(DocumentExtraction).where(DocumentExtraction.id == extraction_id))
    if row is None:
        raise ExtractionNotFound(f"no extraction {extraction_id}")
    return row


async def pages_of(db: AsyncSession, extraction_id: uuid.UUID) -> list[ExtractedPage]:
    query = (
        select(ExtractedPage)
        .where(ExtractedPage.extraction_id == extraction_id)
        .order_by(ExtractedPage.number)
    )
    return list(await db.scalars(query))


class ExtractionNotFound(LookupError):  # noqa: N818 (the 404 it becomes)
    """No extraction (or job) with that id in this tenant."""


__all__ = ["PAGES_METER", "ExtractionError", "ExtractionOut", "extract_stored"]
