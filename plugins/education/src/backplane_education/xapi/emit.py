"""Statements the plugin records of its own learning events, in the tenant's LRS.

Each platform event the plugin emits (``education.enrolled``, ``education.lesson_completed``,
``education.course_completed``) becomes one statement, stored in the emitting transaction
(``event_emitted`` runs there), so the record and the action commit together. Its id derives
from the event's, so the same event can never be recorded twice. Other parts of the plugin
(quizzes: answered, passed, failed) record theirs with :func:`record`.

Learners appear as ``account`` agents (:data:`~.privacy.LEARNER_HOME`, their user id), which
is what export and erasure look for; courses and lessons as ``urn:backplane:education:...``.
"""

from __future__ import annotations

import uuid
from typing import Any

from backplane_education.xapi import store
from backplane_education.xapi.privacy import LEARNER_HOME

VERBS = {
    "registered": "http://adlnet.gov/expapi/verbs/registered",
    "launched": "http://adlnet.gov/expapi/verbs/launched",
    "progressed": "http://adlnet.gov/expapi/verbs/progressed",
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "answered": "http://adlnet.gov/expapi/verbs/answered",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
}
AUTHORITY = {
    "objectType": "Agent",
    "name": "Backplane education",
    "account": {"homePage": "urn:backplane:education", "name": "education"},
}
_NAMESPACE = uuid.UUID("5b0d4c1e-6a8f-4c63-9a51-0e3f2d9c7a10")


def activity_iri(kind: str, identifier: str) -> str:
    return f"urn:backplane:education:{kind}:{identifier}"


def learner(user_id: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": LEARNER_HOME, "name": user_id}}


async def record(
    kernel: Any,
    *,
    key: str,
    user_id: str,
    verb: str,
    activity: str,
    parent: str | None = None,
    registration: str | None = None,
    result: dict[str, Any] | None = None,
) -> str:
    """Store one statement of ``user_id`` doing ``verb`` (a key of :data:`VERBS`) to
    ``activity``; ``key`` names the occurrence (the same key stores nothing new). Its id."""
    statement: dict[str, Any] = {
        "id": str(uuid.uuid5(_NAMESPACE, key)),
        "actor": learner(user_id),
        "verb": {"id": VERBS[verb], "display": {"en": verb}},
        "object": {"objectType": "Activity", "id": activity},
    }
    context: dict[str, Any] = {"platform": "Backplane"}
    if parent is not None:
        context["contextActivities"] = {"parent": [{"id": parent}]}
    if registration is not None:
        context["registration"] = registration
    statement["context"] = context
    if result is not None:
        statement["result"] = result
    prepared = store.prepare([statement], AUTHORITY, store.now())
    await store.save_statements(kernel.db, kernel.tenant_id, prepared, {})
    return str(statement["id"])


async def on_event(kernel: Any, event: Any) -> None:
    """The statement of one of the plugin's own events (others are ignored)."""
    data = event.data
    course = activity_iri("course", str(data.get("course_id")))
    key = f"event:{event.id}"
    if event.type == "education.enrolled":
        await record(
            kernel,
            key=key,
            user_id=data["user_id"],
            verb="registered",
            activity=course,
            registration=data.get("enrolment_id"),
        )
    elif event.type == "education.lesson_completed":
        lesson = activity_iri("lesson", str(data.get("lesson_key") or data.get("lesson_id")))
        await record(
            kernel,
            key=key,
            user_id=data["user_id"],
            verb="completed",
            activity=lesson,
            parent=course,
        )
    elif event.type == "education.course_completed":
        await record(
            kernel,
            key=key,
            user_id=data["user_id"],
            verb="completed",
            activity=course,
            registration=data.get("enrolment_id"),
            result={"completion": True},
        )
