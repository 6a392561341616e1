"""Templates and their versions: what the API takes and shows, and the rules of saving them.

A template's engine is chosen once; each edit adds an immutable version (its source and field
schema), which becomes current. Sources are checked when saved, so most template mistakes are a
400 at once rather than at the first render: UTF-8 text for typst and HTML (HTML also parsed
by Jinja2), a sound .docx archive for DOCX, and a valid field schema for all.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_documents.engines import ENGINES
from backplane_documents.errors import RenderError
from backplane_documents.fields import FieldSpec, parse_schema
from backplane_documents.models import DocumentTemplate, TemplateVersion
from backplane_documents.settings import DocumentsSettings

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new template. ``source`` is the text of a typst or HTML template; ``source_base64``
    the .docx file of a DOCX template."""

    name: Name
    engine: Literal["typst", "html", "docx"] = "typst"
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    source: str | None = None
    source_base64: str | None = None
    fields: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """The field schema: ``[{"name": "total", "type": "number"}, ...]`` (see FieldSpec)."""


class VersionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new version of a template: a source, a schema, or both (what is left out is kept)."""

    source: str | None = None
    source_base64: str | None = None
    fields: list[dict[str, Any]] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class VersionOut(msgspec.Struct, kw_only=True):
    number: int
    fields: list[dict[str, Any]]
    size: int
    created_at: datetime
    source: str | None = None
    """The template's text (typst, HTML), on the single-version read; None for DOCX."""


class TemplateOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    engine: str
    description: str
    current_version: int
    fields: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class TemplateRequestError(ValueError):
    """A template that cannot be saved; ``status`` is 400, 404, 409 or 413."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def template_out(template: DocumentTemplate, version: TemplateVersion) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        engine=template.engine,
        description=template.description,
        current_version=template.current_version,
        fields=version.field_schema,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def version_out(version: TemplateVersion, *, with_source: bool = False) -> VersionOut:
    text = with_source and not ENGINES[version.engine].binary_source
    return VersionOut(
        number=version.number,
        fields=version.field_schema,
        size=len(version.body),
        created_at=version.created_at,
        source=version.body.decode("utf-8") if text else None,
    )


def checked_source(
    engine: str, source: str | None, source_base64: str | None, settings: DocumentsSettings
) -> bytes:
    """The template's bytes, checked for its engine (TemplateRequestError naming what is wrong)."""
    from backplane_documents.engines.docx import check_docx
    from backplane_documents.engines.jinja import check_syntax

    if ENGINES[engine].binary_source:
        if source_base64 is None or source is not None:
            raise TemplateRequestError(f"a {engine} template is sent as `source_base64` (the file)")
        try:
            body = base64.b64decode(source_base64, validate=True)
        except (binascii.Error, ValueError):
            raise TemplateRequestError("`source_base64` is not valid base64") from None
    else:
        if source is None or source_base64 is not None:
            raise TemplateRequestError(f"a {engine} template is sent as `source` (its text)")
        body = source.encode("utf-8")
    if len(body) > settings.max_template_bytes:
        raise TemplateRequestError(
            f"template of {len(body)} bytes is larger than {settings.max_template_bytes} "
            "(documents.max_template_bytes)",
            status=413,
        )
    if not body.strip():
        raise TemplateRequestError("the template is empty")
    try:
        if engine == "html":
            check_syntax(source or "")
        elif engine == "docx":
            check_docx(body, max_unpacked_bytes=10 * settings.max_template_bytes)
    except RenderError as error:
        raise TemplateRequestError(str(error)) from None
    return body


def checked_schema(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schema as stored (defaults filled in), or TemplateRequestError."""
    try:
        specs: tuple[FieldSpec, ...] = parse_schema(raw)
    except ValueError as error:
        raise TemplateRequestError(str(error)) from None
    result: list[dict[str, Any]] = msgspec.to_builtins(specs)
    return result


async def find_template(db: AsyncSession, template_id: uuid.UUID) -> DocumentTemplate:
    """The tenant's template (the session sees no other tenant's), or TemplateRequestError 404."""
    template = await db.scalar(select(DocumentTemplate).where(DocumentTemplate.id == template_id))
    if template is None:
        raise TemplateRequestError(f"no template {template_id}", status=404)
    return template


async def find_version(
    db: AsyncSession, template: DocumentTemplate, number: int | None = None
) -> TemplateVersion:
    """Version ``number`` of ``template`` (default: the current one); else a 404 error."""
    wanted = template.current_version if number is None else number
    version = await db.scalar(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.number == wanted
        )
    )
    if version is None:
        raise TemplateRequestError(f"template {template.id} has no version {wanted}", status=404)
    return version


async def create_template(
    db: AsyncSession, data: TemplateIn, settings: DocumentsSettings, user_id: uuid.UUID | None
) -> tuple[DocumentTemplate, TemplateVersion]:
    """A new template with its first version; TemplateRequestError 409 if the name is taken."""
    body = checked_source(data.engine, data.source, data.source_base64, settings)
    schema = checked_schema(data.fields)
    taken = await db.scalar(select(DocumentTemplate.id).where(DocumentTemplate.name == data.name))
    if taken is not None:
        raise TemplateRequestError(f"a template named {data.name!r} exists already", status=409)
    template = DocumentTemplate(
        id=uuid.uuid4(),
        name=data.name,
        description=data.description,
        engine=data.engine,
        current_version=1,
        created_by=user_id,
    )
    db.add(template)
    try:
        await db.flush()
    except IntegrityError:  # the unique (tenant, name) index settled a race for the name
        raise TemplateRequestError(
            f"a template named {data.name!r} exists already", status=409
        ) from None
    version = TemplateVersion(
        template_id=template.id,
        number=1,
        engine=data.engine,
        body=body,
        field_schema=schema,
        created_by=user_id,
    )
    db.add(version)
    await db.flush()
    return template, version


async def add_version(
    db: AsyncSession,
    template: DocumentTemplate,
    data: VersionIn,
    settings: DocumentsSettings,
    user_id: uuid.UUID | None,
) -> TemplateVersion:
    """A new current version of ``template``. Its number comes from one atomic ``UPDATE ...
    SET current_version = current_version + 1``, which also locks the template (a row lock on
    PostgreSQL, the write lock on SQLite) until the transaction ends: two edits at once get
    consecutive numbers, each built on the version before it."""
    unchanged = data.source is None and data.source_base64 is None and data.fields is None
    if unchanged and data.description is None:
        raise TemplateRequestError("nothing to change: send `source`, `fields` or `description`")
    values: dict[str, Any] = {
        "current_version": DocumentTemplate.current_version + 1,
        "updated_at": datetime.now(UTC),
    }
    if data.description is not None:
        values["description"] = data.description
    number = await db.scalar(
        update(DocumentTemplate)
        .where(DocumentTemplate.id == template.id)
        .values(**values)
        .returning(DocumentTemplate.current_version)
        .execution_options(synchronize_session=False)
    )
    if number is None:
        raise TemplateRequestError(f"no template {template.id}", status=404)
    await db.refresh(template)
    if number > settings.max_versions:
        raise TemplateRequestError(
            f"template has {number - 1} versions already (documents.max_versions)", status=409
        )
    previous = await find_version(db, template, number - 1)
    if data.source is None and data.source_base64 is None:
        body = previous.body
    else:
        body = checked_source(template.engine, data.source, data.source_base64, settings)
    schema = previous.field_schema if data.fields is None else checked_schema(data.fields)
    version = TemplateVersion(
        template_id=template.id,
        number=number,
        engine=template.engine,
        body=body,
        field_schema=schema,
        created_by=user_id,
    )
    db.add(version)
    await db.flush()
    return version


async def list_templates(
    db: AsyncSession, limit: int, after: uuid.UUID | None
) -> list[tuple[DocumentTemplate, TemplateVersion]]:
    """The tenant's templates, oldest first, each with its current version."""
    query = select(DocumentTemplate, TemplateVersion).join(
        TemplateVersion,
        and_(
            TemplateVersion.template_id == DocumentTemplate.id,
            TemplateVersion.number == DocumentTemplate.current_version,
        ),
    )
    if after is not None:
        last = await find_template(db, after)
        query = query.where(
            or_(
                DocumentTemplate.created_at > last.created_at,
                and_(
                    DocumentTemplate.created_at == last.created_at,
                    DocumentTemplate.id > last.id,
                ),
            )
        )
    query = query.order_by(DocumentTemplate.created_at, DocumentTemplate.id).limit(limit)
    return [(template, version) for template, version in (await db.execute(query)).all()]
