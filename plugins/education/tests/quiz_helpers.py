"""Helpers shared by the quiz API tests: a bank holding one question of every type, learners
who are real users of the tenant, and a recorder of every response a learner receives."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import TEST_PASSWORD, seed_tenant

API = "/api/education"
BANKS, QUIZZES, LEARN = f"{API}/quiz-banks", f"{API}/quizzes", f"{API}/learn"

NUMERIC_KEY = 2.71828
ACCEPTED = ["Krebs cycle", "citric acid cycle"]

QUESTIONS: list[dict[str, Any]] = [
    {
        "type": "single",
        "prompt": "Largest planet?",
        "choices": [
            {"text": "Mars", "feedback": "Mars is small."},
            {"text": "Jupiter", "correct": True, "feedback": "Indeed."},
            {"text": "Venus"},
        ],
        "feedback": {"incorrect": "Look at the gas giants."},
    },
    {
        "type": "multiple",
        "prompt": "Noble gases?",
        "points": 2,
        "choices": [
            {"text": "Neon", "correct": True},
            {"text": "Argon", "correct": True},
            {"text": "Nitrogen"},
            {"text": "Oxygen"},
        ],
    },
    {"type": "true_false", "prompt": "Water boils at 100 C at sea level.", "answer": True},
    {
        "type": "numeric",
        "prompt": "Euler's number to 3 places?",
        "answer": NUMERIC_KEY,
        "tolerance": 0.001,
    },
    {"type": "short_text", "prompt": "Name the cycle in mitochondria.", "accepted": ACCEPTED},
    {
        "type": "ordering",
        "prompt": "Smallest first",
        "items": ["atom", "molecule", "cell", "organ"],
    },
    {
        "type": "matching",
        "prompt": "Element symbols",
        "pairs": [{"left": "Fe", "right": "iron"}, {"left": "Au", "right": "gold"}],
        "distractors": ["silver"],
    },
]
KEY_FIELDS = {
    "correct",
    "accepted",
    "answer",
    "tolerance",
    "pairs",
    "distractors",
    "case_sensitive",
    "partial_credit",
    "seed",
    "paper",
    "question_id",
    "revision",
    "body",
}
"""Field names that only the instructor's structs and the stored snapshot have."""


def make_bank(client: TestClient[Litestar], name: str = "science") -> tuple[str, list[str]]:
    bank = client.post(BANKS, json={"name": name})
    assert bank.status_code == 201, bank.text
    bank_id = bank.json()["id"]
    ids = []
    for question in QUESTIONS:
        made = client.post(f"{BANKS}/{bank_id}/questions", json={"question": question})
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    return bank_id, ids


def make_quiz(client: TestClient[Litestar], bank_id: str, **settings: Any) -> str:
    body = {"title": "Science", "draws": [{"bank_id": bank_id}], "published": True, **settings}
    made = client.post(QUIZZES, json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def learner(client: TestClient[Litestar], tenant_slug: str) -> dict[str, str]:
    """A new user who is a member of ``tenant_slug``, signed in there: headers with their
    access token. (The user gets a password by owning a tenant of their own first.)"""
    email = f"learner-{uuid.uuid4().hex[:8]}@example.org"
    seed_tenant(client, f"home-{uuid.uuid4().hex[:8]}", email=email)
    added = client.post("/api/tenant/members", json={"email": email, "role": "member"})
    assert added.status_code == 201, added.text
    login = client.post(
        "/api/auth/login",
        json={"email": email, "password": TEST_PASSWORD, "tenant": tenant_slug},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@dataclass
class Recorder:
    """A learner's client: every response it gets is kept for the key scan."""

    client: TestClient[Litestar]
    headers: dict[str, str]
    responses: list[tuple[str, str, int, str]] = field(default_factory=list)

    def call(self, method: str, url: str, body: Any = None) -> Any:
        kw: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kw["json"] = body
        response = self.client.request(method, url, **kw)
        self.responses.append((method, url, response.status_code, response.text))
        return response


def key_fields_in(value: Any) -> set[str]:
    """Every key-only field name found anywhere in a JSON value."""
    found: set[str] = set()
    if isinstance(value, dict):
        found |= KEY_FIELDS & set(value)
        for item in value.values():
            found |= key_fields_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= key_fields_in(item)
    return found


def parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def answers_for(attempt: dict[str, Any], *, right: bool) -> dict[int, dict[str, Any]]:
    """Answers to every question of ``attempt`` by prompt: all right, or all wrong. The right
    ones are worked out from texts the learner sees (as a learner who knows would)."""
    out: dict[int, dict[str, Any]] = {}
    for view in attempt["questions"]:
        position, kind = view["position"], view["type"]
        by_text = {o["text"]: o["id"] for o in view.get("options", [])}
        if kind == "single":
            out[position] = {"type": kind, "choice": by_text["Jupiter" if right else "Mars"]}
        elif kind == "multiple":
            picked = ["Neon", "Argon"] if right else ["Nitrogen"]
            out[position] = {"type": kind, "choices": [by_text[t] for t in picked]}
        elif kind == "true_false":
            out[position] = {"type": kind, "value": right}
        elif kind == "numeric":
            out[position] = {"type": kind, "value": 2.7185 if right else 3.0}
        elif kind == "short_text":
            out[position] = {"type": kind, "text": "  KREBS   cycle" if right else "Calvin"}
        elif kind == "ordering":
            items = {o["text"]: o["id"] for o in view["items"]}
            order = ["atom", "molecule", "cell", "organ"]
            out[position] = {
                "type": kind,
                "order": [items[t] for t in (order if right else order[::-1])],
            }
        elif kind == "matching":
            lefts = {o["text"]: o["id"] for o in view["left"]}
            rights = {o["text"]: o["id"] for o in view["right"]}
            pairs = {"Fe": "iron", "Au": "gold"} if right else {"Fe": "silver", "Au": "iron"}
            out[position] = {
                "type": kind,
                "matches": {lefts[k]: rights[v] for k, v in pairs.items()},
            }
    return out
