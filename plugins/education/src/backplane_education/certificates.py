"""Certificates of completion, through the documents plugin when it is there.

When a course is completed (the ``education.course_completed`` event, in the completing
transaction) the plugin asks the kernel for the ``documents.render`` service: a function the
documents plugin offers through ``register_services``. It never imports that plugin, so the
dependency is optional: without documents (not installed, or switched off for the tenant) the
completion is recorded as always and no certificate is issued. With it, the course's template
(``certificate_template``, else the plugin setting of that name) is rendered with the learner's
address, the course's title and the completion date, stored as a document about the learner
(``subject_email``: the documents plugin's erasure finds it), and recorded here so that the
learner can list and download it (``GET /me/certificates``).

The render runs inside a savepoint: a template the tenant lacks, fields it refuses or a spent
``documents.generated`` quota cost the learner their certificate (logged), never their
completion.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from backplane import Kernel
from backplane_education.certificates_models import Certificate
from backplane_education.models import Course, Enrolment

RENDER_SERVICE = "documents.render"
"""The documents plugin's public service (see its README, "For other plugins")."""

log = logging.getLogger(__name__)


async def issue_certificate(kernel: Kernel, data: dict[str, Any]) -> Certificate | None:
    """The certificate of the completion ``data`` describes (the event's data), or None when
    the documents plugin is not there or the render failed."""
    render = await kernel.service(RENDER_SERVICE)
    if render is None:
        return None
    enrolment = await kernel.db.get(Enrolment, uuid.UUID(data["enrolment_id"]))
    if enrolment is None or enrolment.completed_at is None:
        return None
    issued = await kernel.db.scalar(
        select(Certificate).where(Certificate.enrolment_id == enrolment.id)
    )
    if issued is not None:
        return issued
    course = await kernel.db.get(Course, enrolment.course_id)
    member = await kernel.member(user_id=enrolment.user_id)
    if course is None or member is None:
        return None
    template = course.certificate_template or kernel.plugin_settings.certificate_template
    completed_at: datetime = enrolment.completed_at
    fields = {
        "recipient": member.email,
        "course": course.title,
        "completed_on": completed_at.date().isoformat(),
    }
    try:
        async with kernel.db.begin_nested():
            made = await render(
                template=template,
                fields=fields,
                name=f"Certificate - {course.title}",
                subject_email=member.email,
            )
            certificate = Certificate(
                enrolment_id=enrolment.id,
                course_id=course.id,
                user_id=enrolment.user_id,
                version=enrolment.version_number,
                course_title=course.title,
                template=template,
                document_id=made["document_id"],
                file_id=made["file_id"],
                name=made["name"],
                media_type=made["media_type"],
                size=made["size"],
                sha256=made["sha256"],
                completed_at=completed_at,
            )
            kernel.db.add(certificate)
            await kernel.db.flush()  # one per enrolment: a racing second one fails here
    # Whatever another plugin raises (a missing template, refused fields, a spent quota, or a
    # fault of its own), or a certificate issued meanwhile, costs this certificate and its
    # document, never the completion: logged, rolled back to the savepoint.
    except Exception as error:  # noqa: BLE001
        log.warning(
            "no certificate for enrolment %s of course %s: %s: %s",
            enrolment.id,
            course.id,
            type(error).__name__,
            error,
        )
        return None
    return certificate


async def certificates_of(kernel: Kernel, user_id: uuid.UUID) -> list[Certificate]:
    """The learner's certificates, newest first."""
    rows = await kernel.db.scalars(
        select(Certificate)
        .where(Certificate.user_id == user_id)
        .order_by(Certificate.issued_at.desc(), Certificate.id)
    )
    return list(rows)


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every certificate of the tenant; for a person, theirs (the documents themselves are the
    documents plugin's to export)."""
    if subject is None:
        await archive.add_table(Certificate)
    elif subject.user_id is not None:
        await archive.add_table(Certificate, Certificate.user_id == subject.user_id)


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Delete the person's certificates. Their documents and files are erased by the documents
    plugin (rendered with their address); if it is gone, the files are deleted here."""
    if subject.user_id is None:
        return {}
    rows = await certificates_of(kernel, subject.user_id)
    if rows and await kernel.service(RENDER_SERVICE) is None:
        from backplane import FileNotFound

        for row in rows:
            with contextlib.suppress(FileNotFound):
                await kernel.files.delete(row.file_id)
    result: Any = await kernel.db.execute(
        delete(Certificate)
        .where(Certificate.user_id == subject.user_id)
        .execution_options(synchronize_session=False)
    )
    return {Certificate.__tablename__: int(result.rowcount or 0)}
