"""Certificates: a learner lists and downloads their own; a course's teachers list the ones
issued for it. The documents themselves are rendered and kept by the documents plugin
(``backplane_education.certificates``); these routes need only the education permissions."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream
from sqlalchemy import select

from backplane import FileNotFound, Kernel, requires
from backplane_education.certificates import certificates_of
from backplane_education.certificates_models import Certificate
from backplane_education.common import (
    ERROR_HANDLERS,
    TAGS,
    learner_id,
    not_found,
    require_teacher,
)
from backplane_education.courses import find_course
from backplane_education.plugin import LEARN, READ


class CertificateOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    course_title: str
    version: int
    name: str
    media_type: str
    size: int
    sha256: str
    completed_at: datetime
    issued_at: datetime
    download: str
    """The learner's download route (``GET /api/education/me/certificates/{id}/content``)."""


def certificate_out(row: Certificate) -> CertificateOut:
    return CertificateOut(
        id=row.id,
        course_id=row.course_id,
        user_id=row.user_id,
        course_title=row.course_title,
        version=row.version,
        name=row.name,
        media_type=row.media_type,
        size=row.size,
        sha256=row.sha256,
        completed_at=row.completed_at,
        issued_at=row.issued_at,
        download=f"/api/education/me/certificates/{row.id}/content",
    )


def _attachment(name: str) -> str:
    from urllib.parse import quote

    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


class CertificatesController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/me/certificates", guards=[requires(LEARN)])
    async def my_certificates(self, kernel: NamedDependency[Kernel]) -> list[CertificateOut]:
        """The caller's certificates of completion, newest first (issued when a course is
        completed and the documents plugin is there)."""
        return [certificate_out(r) for r in await certificates_of(kernel, learner_id(kernel))]

    @get("/me/certificates/{certificate_id:uuid}/content", guards=[requires(LEARN)])
    async def download_certificate(
        self, certificate_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> Stream:
        """One of the caller's certificates, as an attachment (404: not theirs, or its
        document was deleted)."""
        row = await kernel.db.scalar(
            select(Certificate).where(
                Certificate.id == certificate_id, Certificate.user_id == learner_id(kernel)
            )
        )
        if row is None:
            raise not_found("certificate")
        try:
            opened = await kernel.files.open(row.file_id)
        except FileNotFound:
            raise not_found("certificate document") from None
        return Stream(
            opened.read(),
            media_type=row.media_type,
            headers={
                "Content-Disposition": _attachment(row.name),
                "Content-Length": str(opened.info.size),
                "Content-Security-Policy": "sandbox; default-src 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @get("/courses/{course_id:uuid}/certificates", guards=[requires(READ)])
    async def course_certificates(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[CertificateOut]:
        """The certificates issued for a course (its instructors and education managers)."""
        await find_course(kernel.db, course_id)  # another tenant's course: 404
        await require_teacher(kernel, course_id)
        rows = await kernel.db.scalars(
            select(Certificate)
            .where(Certificate.course_id == course_id)
            .order_by(Certificate.issued_at.desc(), Certificate.id)
        )
        return [certificate_out(r) for r in rows]
