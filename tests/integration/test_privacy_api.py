"""One person's export and erasure (``POST /api/privacy/export|erase``), SQLite and PostgreSQL.

A person who belongs to two tenants is erased from one: that tenant's rows about them are gone
or pseudonymised in every plugin and their membership ends, while the other tenant keeps their
membership, their rows and their account; erased from the second too, the account goes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backplane.identity.models import Membership, User
from tests.db_helpers import admin_session
from tests.privacy_helpers import Stack, run, stack_on

PERSON = "pat@shared.example.org"


@pytest.fixture
def stack(data_dir: Path, db_env: dict[str, str]) -> Iterator[Stack]:
    with stack_on(data_dir, db_env) as made:
        for who in (made.a, made.b):
            answer = made.call(
                who, "POST", "/api/tenant/members", json={"email": PERSON, "role": "member"}
            )
            assert answer.status_code == 201, answer.text
            for body in (f"call {PERSON} about {who.slug}", "nothing personal"):
                made.call(who, "POST", "/api/kitchen_sink/notes/", json={"body": body})
        yield made


def notes(stack: Stack, who: Any) -> list[str]:
    return [n["body"] for n in stack.call(who, "GET", "/api/kitchen_sink/notes/").json()]


def api_key(stack: Stack, role: str) -> str:
    made = stack.call(stack.a, "POST", "/api/apikeys", json={"name": role, "role": role})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def accounts(stack: Stack) -> dict[str, list[str]]:
    """Each account of PERSON with the tenants it is a member of."""

    async def read() -> dict[str, list[str]]:
        async with admin_session(stack.plugins.settings) as session:
            users = list(await session.scalars(select(User).where(User.email == PERSON)))
            return {
                str(u.id): sorted(
                    str(t)
                    for t in await session.scalars(
                        select(Membership.tenant_id).where(Membership.user_id == u.id)
                    )
                )
                for u in users
            }

    found: dict[str, list[str]] = run(read())
    return found


def test_export_holds_the_person_in_this_tenant_only(stack: Stack) -> None:
    answer = stack.call(stack.a, "POST", "/api/privacy/export", json={"email": PERSON.upper()})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["cache-control"] == "no-store"
    exported = stack.call(stack.a, "GET", "/api/audit", params={"action": "data.exported"})
    (row,) = exported.json()["items"]
    assert (row["details"], row["target_type"]) == ({"scope": "subject"}, "user")
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["subject"]["email"] == PERSON
        assert manifest["tenant"]["slug"] == "acme"

        def rows(entry: str) -> list[dict[str, Any]]:
            return [json.loads(line) for line in archive.read(entry).splitlines()]

        (user,) = rows("core/backplane_users.jsonl")
        assert user["email"] == PERSON
        assert "password_hash" not in user
        (membership,) = rows("core/backplane_memberships.jsonl")
        assert membership["tenant_id"] == str(stack.a.tenant_id)  # not globex's
        assert [n["body"] for n in rows("kitchen_sink/kitchen_sink_notes.jsonl")] == [
            f"call {PERSON} about acme"
        ]
        assert (
            archive.read("kitchen_sink/files/notes.txt") == f"call {PERSON} about acme\n".encode()
        )


def test_erasure_keeps_the_other_tenant_and_the_account_until_the_last(stack: Stack) -> None:
    (user_id,) = accounts(stack)
    answer = stack.call(stack.a, "POST", "/api/privacy/erase", json={"user_id": user_id})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["was_member"] is True
    assert body["account_deleted"] is False  # still globex's member
    assert body["plugins"]["kitchen_sink"] == {"kitchen_sink_notes": 1}
    assert body["plugins"]["core"]["backplane_memberships"] == 1
    assert notes(stack, stack.a) == ["call [erased] about acme", "nothing personal"]
    assert notes(stack, stack.b) == [f"call {PERSON} about globex", "nothing personal"]
    assert accounts(stack) == {user_id: [str(stack.b.tenant_id)]}
    members = stack.call(stack.a, "GET", "/api/tenant/members").json()
    assert PERSON not in [m["email"] for m in members]
    # The erasure is on acme's audit trail, naming the account and never the email.
    trail = stack.call(stack.a, "GET", "/api/audit", params={"action": "data.erased"}).json()
    (erased,) = trail["items"]
    assert (erased["target_type"], erased["target_id"]) == ("user", user_id)
    assert PERSON not in json.dumps(erased)
    globex = stack.call(stack.b, "GET", "/api/audit", params={"action": "data.erased"})
    assert globex.json()["items"] == []

    # No longer acme's member: acme cannot name them by id (but may still erase the email).
    again = stack.call(stack.a, "POST", "/api/privacy/erase", json={"user_id": user_id})
    assert again.status_code == 404

    last = stack.call(stack.b, "POST", "/api/privacy/erase", json={"email": PERSON})
    assert last.status_code == 200, last.text
    assert last.json()["account_deleted"] is True
    assert accounts(stack) == {}
    assert notes(stack, stack.b) == ["call [erased] about globex", "nothing personal"]


def test_an_email_of_no_member_is_erased_from_plugins_only(stack: Stack) -> None:
    stranger = "someone@elsewhere.example.org"
    stack.call(stack.a, "POST", "/api/kitchen_sink/notes/", json={"body": f"lead {stranger}"})
    answer = stack.call(stack.a, "POST", "/api/privacy/erase", json={"email": stranger})
    assert answer.status_code == 200, answer.text
    assert answer.json()["was_member"] is False
    assert "lead [erased]" in notes(stack, stack.a)
    assert len(accounts(stack)) == 1


def test_only_admins_erase_and_never_above_their_role(stack: Stack) -> None:
    member_key = api_key(stack, "member")
    denied = stack.client.post(
        "/api/privacy/erase",
        json={"email": PERSON},
        headers={"Authorization": f"Bearer {member_key}"},
    )
    assert denied.status_code == 403
    admin_key = api_key(stack, "admin")
    above = stack.client.post(
        "/api/privacy/erase",
        json={"user_id": str(stack.a.user_id)},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert above.status_code == 403
    assert "cannot erase a owner" in above.text
    last_owner = stack.call(
        stack.a, "POST", "/api/privacy/erase", json={"user_id": str(stack.a.user_id)}
    )
    assert last_owner.status_code == 409
    assert "last owner" in last_owner.text
    assert notes(stack, stack.a)[0] == f"call {PERSON} about acme"  # nothing rolled forward


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 400, "exactly one of user_id or email"),
        ({"email": PERSON, "user_id": "4c1f1f6e-8d5d-4c55-9d0a-6f5f1f1f1f1f"}, 400, "exactly one"),
        ({"email": "not an email"}, 400, "is not an email address"),
        ({"user_id": "4c1f1f6e-8d5d-4c55-9d0a-6f5f1f1f1f1f"}, 404, "no such member"),
        ({"email": PERSON, "extra": 1}, 400, "extra"),
    ],
)
def test_bad_requests_are_refused_clearly(
    stack: Stack, body: dict[str, Any], status: int, says: str
) -> None:
    for path in ("/api/privacy/export", "/api/privacy/erase"):
        answer = stack.call(stack.a, "POST", path, json=body)
        assert answer.status_code == status, answer.text
        assert says in answer.text


def test_an_export_past_its_limit_is_refused(data_dir: Path) -> None:
    limit = {"BACKPLANE_PRIVACY__MAX_SUBJECT_EXPORT_BYTES": "2048"}
    with stack_on(data_dir, limit) as made:
        for _ in range(8):
            body = {"body": f"{PERSON} " + "x" * 400}
            made.call(made.a, "POST", "/api/kitchen_sink/notes/", json=body)
        answer = made.call(made.a, "POST", "/api/privacy/export", json={"email": PERSON})
        assert answer.status_code == 413
        assert "backplane tenants export" in answer.text
