"""Generate one document: meter it, render it, store it through the kernel's files service,
record it. One transaction: if any step fails (a spent quota, a render error, a full store),
nothing of it is kept, the usage included."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec

from backplane import Kernel
from backplane_documents.computed import compute_one
from backplane_documents.models import Document, DocumentTemplate, TemplateVersion
from backplane_documents.plugin import GENERATED_METER, PAGES_METER
from backplane_documents.rendering import Rendered, RenderLimits, render


class VersionSnapshot(msgspec.Struct, frozen=True):
    """What rendering needs of a version, detached from the session (renders run in a
    thread, and ORM objects belong to their session's)."""

    engine: str
    body: bytes
    field_schema: Sequence[Mapping[str, Any]]

    @classmethod
    def of(cls, version: TemplateVersion) -> VersionSnapshot:
        return cls(version.engine, bytes(version.body), list(version.field_schema))


def document_name(template: DocumentTemplate, wanted: str | None, ext: str) -> str:
    """The stored file's name: ``wanted`` or the template's, safe for any filesystem."""
    base = re.sub(r"[^\w .-]+", "_", wanted or template.name).strip(" .") or "document"
    base = base[:200]
    return base if base.lower().endswith(f".{ext}") else f"{base}.{ext}"


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def render_in_thread(
    version: TemplateVersion, fields: Mapping[str, Any], limits: RenderLimits, *, preview: bool
) -> Rendered:
    """:func:`render` off the event loop (it waits on a worker process)."""
    return await asyncio.to_thread(
        render, VersionSnapshot.of(version), fields, limits, preview=preview
    )


async def generate(
    kernel: Kernel,
    template: DocumentTemplate,
    version: TemplateVersion,
    fields: Mapping[str, Any],
    limits: RenderLimits,
    *,
    name: str | None = None,
    user_id: uuid.UUID | None = None,
    subject_email: str | None = None,
) -> Document:
    """Render ``version`` with ``fields`` and store the result as a new document.

    The document is metered first, so a spent hard quota answers 429 before any rendering;
    :class:`RenderError`, ``QuotaExceeded`` or a files-service refusal roll it all back."""
    await kernel.usage.record(GENERATED_METER)
    fields = await compute_one(kernel, version.field_schema, fields)  # models fill computed fields
    rendered = await render_in_thread(version, fields, limits, preview=False)
    await kernel.usage.record(PAGES_METER, rendered.pages)
    filename = document_name(template, name, rendered.filename_ext)
    info = await kernel.files.save(
        _once(rendered.content), name=filename, max_bytes=limits.max_output_bytes
    )
    document = Document(
        id=uuid.uuid4(),
        template_id=template.id,
        version_id=version.id,
        version_number=version.number,
        file_id=info.id,
        name=filename,
        media_type=rendered.media_type,
        size=info.size,
        pages=rendered.pages,
        sha256=info.sha256,
        subject_email=subject_email.lower() if subject_email else None,
        created_by=user_id,
    )
    kernel.db.add(document)
    await kernel.db.flush()
    await kernel.events.emit(
        "documents.document_generated",
        {"document_id": str(document.id), "template_id": str(template.id), "pages": rendered.pages},
    )
    return document
