"""``/api/documents/templates``: templates and versions, preview, and single renders."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, requires
from backplane_documents.documents import DocumentOut, document_out
from backplane_documents.fields import EMAIL_PATTERN, example_fields, parse_schema
from backplane_documents.generation import generate, render_in_thread
from backplane_documents.models import Document
from backplane_documents.plugin import ADMIN, READ, WRITE
from backplane_documents.routes_common import ERROR_HANDLERS, INERT_CONTENT, TAGS, user_of
from backplane_documents.settings import DocumentsSettings
from backplane_documents.templates import (
    TemplateIn,
    TemplateOut,
    VersionIn,
    VersionOut,
    add_version,
    create_template,
    find_template,
    find_version,
    list_templates,
    template_out,
    version_out,
)

Req = Request[Any, Any, Any]


class RenderIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The document's data, checked against the version's field schema; ``version`` picks an
    older version (default: the current one); ``name`` names the stored file."""

    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    subject_email: Annotated[str, msgspec.Meta(max_length=320, pattern=EMAIL_PATTERN)] | None = None
    """Whom the document is about (a certificate's recipient): their export includes it and
    their erasure (``POST /api/privacy/erase``) deletes it."""


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Data to preview with (default: the schema's examples) and the version to preview."""

    fields: dict[str, Any] | None = None
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None


class TemplatesController(Controller):
    path = "/templates"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def list_templates(
        self,
        db: NamedDependency[AsyncSession],
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Templates per page")] = 50,
        after: Annotated[
            uuid.UUID | None, QueryParameter(description="Last id of the previous page")
        ] = None,
    ) -> list[TemplateOut]:
        rows = await list_templates(db, limit, after)
        return [template_out(template, version) for template, version in rows]

    @post("/", guards=[requires(WRITE)])
    async def create_template(
        self,
        request: Req,
        data: JSONBody[TemplateIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[DocumentsSettings],
    ) -> TemplateOut:
        template, version = await create_template(
            kernel.db, data, plugin_settings, user_of(request)
        )
        await kernel.audit.record(
            "documents.template_created",
            target=("template", template.id),
            details={"name": template.name, "engine": template.engine},
        )
        return template_out(template, version)

    @get("/{template_id:uuid}", guards=[requires(READ)])
    async def get_template(
        self, template_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> TemplateOut:
        template = await find_template(db, template_id)
        return template_out(template, await find_version(db, template))

    @put("/{template_id:uuid}", guards=[requires(WRITE)])
    async def update_template(
        self,
        request: Req,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[VersionIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[DocumentsSettings],
    ) -> TemplateOut:
        """Edit a template: a new version, which becomes current (older ones stay)."""
        template = await find_template(kernel.db, template_id)
        version = await add_version(kernel.db, template, data, plugin_settings, user_of(request))
        await kernel.audit.record(
            "documents.template_updated",
            target=("template", template.id),
            details={"version": version.number},
        )
        return template_out(template, version)

    @delete("/{template_id:uuid}", guards=[requires(ADMIN)])
    async def delete_template(
        self, template_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete a template, its versions, and the documents made from it (their files too)."""
        template = await find_template(kernel.db, template_id)
        file_ids = list(
            await kernel.db.scalars(
                select(Document.file_id).where(Document.template_id == template.id)
            )
        )
        for file_id in file_ids:
            await kernel.files.delete(file_id)
        await kernel.db.delete(template)
        await kernel.db.flush()
        await kernel.audit.record(
            "documents.template_deleted",
            target=("template", template_id),
            details={"name": template.name, "documents": len(file_ids)},
        )

    @get("/{template_id:uuid}/versions", guards=[requires(READ)])
    async def list_versions(
        self, template_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> list[VersionOut]:
        from backplane_documents.models import TemplateVersion

        template = await find_template(db, template_id)
        versions = await db.scalars(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template.id)
            .order_by(TemplateVersion.number)
        )
        return [version_out(version) for version in versions]

    @get("/{template_id:uuid}/versions/{number:int}", guards=[requires(READ)])
    async def get_version(
        self,
        template_id: FromPath[uuid.UUID],
        number: FromPath[int],
        db: NamedDependency[AsyncSession],
    ) -> VersionOut:
        template = await find_template(db, template_id)
        return version_out(await find_version(db, template, number), with_source=True)

    @post("/{template_id:uuid}/preview", guards=[requires(WRITE)], status_code=200)
    async def preview(
        self,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[PreviewIn],
        db: NamedDependency[AsyncSession],
        plugin_settings: NamedDependency[DocumentsSettings],
    ) -> Response[bytes]:
        """Render without storing or metering: typst gives its first page as a PNG, HTML the
        page, DOCX the file. Without ``fields``, the schema's examples are used."""
        template = await find_template(db, template_id)
        version = await find_version(db, template, data.version)
        fields = data.fields
        if fields is None:
            fields = example_fields(parse_schema(version.field_schema))
        rendered = await render_in_thread(version, fields, plugin_settings.limits, preview=True)
        return Response(
            rendered.content,
            media_type=rendered.media_type,
            headers={
                "Content-Disposition": f'inline; filename="preview.{rendered.filename_ext}"',
                "X-Document-Pages": str(rendered.pages),
                **INERT_CONTENT,
            },
        )

    @post("/{template_id:uuid}/render", guards=[requires(WRITE)])
    async def render_document(
        self,
        request: Req,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[RenderIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[DocumentsSettings],
    ) -> DocumentOut:
        """Render one document and store it (download: ``GET /api/documents/documents/{id}/
        content``). 400 for fields that do not match the schema, 422 when the template fails
        or hits a limit, 429 when the tenant's ``documents.generated`` quota is spent."""
        template = await find_template(kernel.db, template_id)
        version = await find_version(kernel.db, template, data.version)
        document = await generate(
            kernel,
            template,
            version,
            data.fields,
            plugin_settings.limits,
            name=data.name,
            user_id=user_of(request),
            subject_email=data.subject_email,
        )
        return document_out(document)
