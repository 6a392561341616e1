"""The education plugin's hooks: everything the kernel needs to know, nothing heavy imported
eagerly (routes load when the app is built, Markdown when a lesson is read).

Other parts of the plugin (quizzes, the xAPI record store) register their hooks by appending
clearly separated sections at the end of this module. Other plugins react to a completed course
through the kernel's ``event_emitted`` hook on :data:`COURSE_COMPLETED` (a certificate, say):
this plugin never imports them.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane import EventType, Meter, Permission, PluginInfo, hookimpl
from backplane_education.settings import EducationSettings

READ = "education.read"
"""See the catalogue and course outlines."""
LEARN = "education.learn"
"""Enrol oneself, follow lessons, report progress."""
TEACH = "education.teach"
"""Create courses (the creator becomes their instructor); an instructor edits drafts of the
courses they teach and reads those courses' dashboards."""
MANAGE = "education.manage"
"""Every course: publish, enrol others, cohorts, instructors, the admin dashboard."""

ENROLMENTS_METER = "education.enrolments"
"""One per enrolment taken (a re-enrolment after unenrolling counts again)."""
COMPLETIONS_METER = "education.completions"
"""One per course completed."""

ENROLLED = "education.enrolled"
LESSON_COMPLETED = "education.lesson_completed"
COURSE_COMPLETED = "education.course_completed"
"""Data: ``course_id``, ``enrolment_id``, ``user_id``, ``version``, ``completed_at``, ``title``."""

plugin = PluginInfo(
    name="education",
    requires_core=">=0.1,<0.2",
    settings=EducationSettings,
    description="Versioned courses, enrolment with seat limits, progress and dashboards",
)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane_education.courses_routes import CoursesController
    from backplane_education.courses_routes_content import ContentController
    from backplane_education.dashboards import DashboardsController
    from backplane_education.enrolment_routes import EnrolmentController
    from backplane_education.progress_routes import ProgressController

    register(
        CoursesController,
        ContentController,
        EnrolmentController,
        ProgressController,
        DashboardsController,
    )
    from backplane_education.quizzes.routes import CONTROLLERS as QUIZ_CONTROLLERS  # quizzes

    register(*QUIZ_CONTROLLERS)


@hookimpl
def register_migrations(register: Any) -> None:
    from backplane_education.models import Course
    from backplane_education.quizzes import models as quiz_models  # noqa: F401 - its tables

    register(files(__package__) / "migrations", branch="education", metadata=Course.metadata)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code=READ,
            roles=("owner", "admin", "member", "viewer"),
            description="See the course catalogue and outlines",
        ),
        Permission(
            code=LEARN,
            roles=("owner", "admin", "member", "viewer"),
            description="Enrol oneself, follow lessons and report progress",
        ),
        Permission(
            code=TEACH,
            roles=("owner", "admin", "member"),
            description="Create courses and edit the drafts of the courses one teaches",
        ),
        Permission(
            code=MANAGE,
            roles=("owner", "admin"),
            description="Manage every course, enrol learners, cohorts and instructors",
        ),
    )
    from backplane_education.quizzes.declarations import PERMISSIONS  # quizzes

    register(*PERMISSIONS)


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code=ENROLMENTS_METER,
            unit="enrolment",
            aggregation="count",
            description="Enrolments taken in courses",
        ),
        Meter(
            code=COMPLETIONS_METER,
            unit="completion",
            aggregation="count",
            description="Courses completed by learners",
        ),
    )
    from backplane_education.quizzes.declarations import METERS  # quizzes

    register(*METERS)


@hookimpl
def register_event_types(register: Any) -> None:
    register(
        EventType(name=ENROLLED, description="A learner was enrolled in a course"),
        EventType(name=LESSON_COMPLETED, description="A learner completed a lesson"),
        EventType(
            name=COURSE_COMPLETED,
            description="A learner completed a course (all required lessons and passed quizzes)",
        ),
    )
    from backplane_education.quizzes.declarations import EVENT_TYPES  # quizzes

    register(*EVENT_TYPES)


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_education.privacy import export
    from backplane_education.quizzes.privacy import export as export_quizzes

    await export(kernel, archive, subject)
    await export_quizzes(kernel, archive, subject)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_education.privacy import erase
    from backplane_education.quizzes.privacy import erase as erase_quizzes

    return {**await erase(kernel, subject), **await erase_quizzes(kernel, subject)}


@hookimpl
async def seed_demo_data(kernel: Any) -> dict[str, str]:
    from backplane_education.demo import seed
    from backplane_education.quizzes.demo import seed as seed_quizzes

    return {**await seed(kernel), **await seed_quizzes(kernel)}


# -- xAPI learning record store (/xapi/, backplane_education.xapi) ------------------------------
# Its own hook implementations (pluggy ``specname``), so the sections above stay untouched.


@hookimpl(specname="register_routes")
def register_xapi_routes(register: Any) -> None:
    from backplane_education.xapi import hooks

    hooks.register_routes(register)


@hookimpl(specname="register_auth_backends")
def register_xapi_auth_backends(register: Any) -> None:
    from backplane_education.xapi import hooks

    hooks.register_auth_backends(register)


@hookimpl(specname="register_permissions")
def register_xapi_permissions(register: Any) -> None:
    from backplane_education.xapi import hooks

    register(*hooks.permissions())


@hookimpl(specname="export_tenant_data")
async def export_xapi_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_education.xapi import hooks

    await hooks.export_tenant_data(kernel, archive, subject)


@hookimpl(specname="erase_subject")
async def erase_xapi_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_education.xapi import hooks

    return await hooks.erase_subject(kernel, subject)


@hookimpl(specname="event_emitted")
async def record_xapi_statement(kernel: Any, event: Any) -> None:
    """The plugin's own learning events become statements in the tenant's LRS."""
    if event.type.startswith("education."):
        from backplane_education.xapi.emit import on_event

        await on_event(kernel, event)


# -- certificates of completion (backplane_education.certificates) ------------------------------
# Rendered by the documents plugin through the kernel's ``documents.render`` service when that
# plugin is there for the tenant (an optional dependency: it is never imported).


@hookimpl(specname="register_routes")
def register_certificate_routes(register: Any) -> None:
    from backplane_education.certificates_routes import CertificatesController

    register(CertificatesController)


@hookimpl(specname="event_emitted")
async def issue_certificate(kernel: Any, event: Any) -> None:
    """A completed course gets its certificate, in the completing transaction."""
    if event.type == COURSE_COMPLETED:
        from backplane_education.certificates import issue_certificate as issue

        await issue(kernel, event.data)


@hookimpl(specname="export_tenant_data")
async def export_certificates(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_education.certificates import export

    await export(kernel, archive, subject)


@hookimpl(specname="erase_subject")
async def erase_certificates(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_education.certificates import erase

    return await erase(kernel, subject)


# --- recommendations (recommendations/): trainers and their routes; no tables of their own


@hookimpl(specname="register_routes")
def register_recommendation_routes(register: Any) -> None:
    from backplane_education.recommendations.routes import RecommendationsController

    register(RecommendationsController)


@hookimpl
def register_trainers(register: Any) -> None:
    from backplane_education.recommendations.trainers import education_trainers

    register(*education_trainers())
