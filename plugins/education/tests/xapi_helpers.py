"""Helpers of the LRS tests: credentials, headers, statements, multipart bodies."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from backplane_education.xapi.multipart import Part, build_mixed

CREDENTIALS = "/api/education/xapi/credentials"
STATEMENTS = "/xapi/statements"
VERSION = {"X-Experience-API-Version": "1.0.3"}
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def credential(
    client: TestClient[Litestar], scope: str = "all", headers: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers of a new LRS credential of the tenant ``headers`` (default: the client's)."""
    made = client.post(
        CREDENTIALS, json={"name": f"lms {scope}", "scope": scope}, headers=headers or {}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    return basic(body["key"], body["secret"])


def basic(key: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}", **VERSION}


def statement(
    email: str = "ada@example.org",
    verb: str = COMPLETED,
    activity: str = "http://example.org/course/1",
    **extra: Any,
) -> dict[str, Any]:
    name = email.split("@", maxsplit=1)[0]
    return {
        "actor": {"objectType": "Agent", "mbox": f"mailto:{email}", "name": name},
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": activity,
            "definition": {"name": {"en-US": "Course", "fr-FR": "Cours"}},
        },
        **extra,
    }


def new_id() -> str:
    return str(uuid.uuid4())


def with_attachment(
    statements: Any, content: bytes, content_type: str = "text/plain"
) -> tuple[bytes, str, str]:
    """A multipart/mixed body of ``statements`` (their attachments already listed) and
    ``content``; the body, its content type and the content's SHA-256."""
    import msgspec

    sha2 = hashlib.sha256(content).hexdigest()
    body, media = build_mixed(msgspec.json.encode(statements), [Part(sha2, content_type, content)])
    return body, media, sha2


def attachment_info(content: bytes, usage: str = "http://example.org/usage/note") -> dict[str, Any]:
    return {
        "usageType": usage,
        "display": {"en-US": "note"},
        "contentType": "text/plain",
        "length": len(content),
        "sha2": hashlib.sha256(content).hexdigest(),
    }
