"""What the documents plugin offers other plugins through the kernel (``register_services``):
they call ``await kernel.service("documents.render")`` and never import this package, so the
documents plugin stays an optional dependency (no service when it is not installed, or is
switched off for the tenant).

``documents.render(template=..., fields=..., name=None, subject_email=None)`` renders the
tenant's template (a template id, or its exact name such as ``"Certificate of completion"``;
its current version) with ``fields`` and stores the document, exactly as ``POST
/api/documents/templates/{id}/render`` does (metered, audited by its event, in the caller's
transaction). It returns a dict: ``document_id``, ``file_id`` (a kernel file the caller may
``kernel.files.open``), ``name``, ``media_type``, ``pages``, ``size``, ``sha256``,
``template_id``, ``version``. It raises :class:`LookupError` when the tenant has no such
template, :class:`ValueError` for fields the template refuses or a render that fails
(``str(error)`` says why), and ``backplane.QuotaExceeded`` for a spent quota. Pass
``subject_email`` for a document about a person (a certificate's recipient): their erasure
then finds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from backplane import Kernel, Service

RENDER = "documents.render"


async def render_for_plugin(
    kernel: Kernel,
    *,
    template: str | uuid.UUID,
    fields: Mapping[str, Any],
    name: str | None = None,
    subject_email: str | None = None,
) -> dict[str, Any]:
    """The ``documents.render`` service (see the module's docstring)."""
    from backplane_documents.generation import generate
    from backplane_documents.models import DocumentTemplate
    from backplane_documents.templates import find_version

    column = DocumentTemplate.id if isinstance(template, uuid.UUID) else DocumentTemplate.name
    found = await kernel.db.scalar(select(DocumentTemplate).where(column == template))
    if found is None:
        raise LookupError(f"the tenant has no document template {str(template)!r}")
    version = await find_version(kernel.db, found)
    user_id = kernel.principal.user_id if kernel.principal is not None else None
    document = await generate(
        kernel,
        found,
        version,
        fields,
        kernel.plugin_settings.limits,
        name=name,
        user_id=user_id,
        subject_email=subject_email,
    )
    return {
        "document_id": document.id,
        "file_id": document.file_id,
        "name": document.name,
        "media_type": document.media_type,
        "pages": document.pages,
        "size": document.size,
        "sha256": document.sha256,
        "template_id": found.id,
        "version": version.number,
    }


def services() -> list[Service]:
    """The services the plugin registers."""
    return [
        Service(
            name=RENDER,
            call=render_for_plugin,
            description="Render a tenant template (id or name) with fields into a stored "
            "document; returns its ids, name, media type, pages, size and SHA-256",
        )
    ]
