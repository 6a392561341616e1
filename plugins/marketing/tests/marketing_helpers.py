"""Helpers shared by the marketing plugin's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING

BASE = "/api/marketing"
CONTACTS = f"{BASE}/contacts"
ATTRIBUTES = f"{BASE}/attributes"
LISTS = f"{BASE}/lists"
IMPORTS = f"{BASE}/imports"
SEGMENTS = f"{BASE}/segments"


def define(client: TestClient[Litestar], key: str, kind: str, **extra: Any) -> None:
    made = client.post(ATTRIBUTES, json={"key": key, "type": kind, **extra})
    assert made.status_code == 201, made.text


def make_list(client: TestClient[Litestar], name: str) -> str:
    made = client.post(LISTS, json={"name": name})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def make_contact(client: TestClient[Litestar], email: str, **extra: Any) -> dict[str, Any]:
    made = client.post(CONTACTS, json={"email": email, **extra})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def all_contacts(client: TestClient[Litestar], **kw: Any) -> list[dict[str, Any]]:
    """Every contact, page by page (pages of 2, to exercise paging)."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
        page = client.get(CONTACTS, params=params, **kw)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        after = page.json()["next"]
        if after is None:
            return items


def base_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "marketing",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        **CHEAP_PASSWORD_HASHING,
    }


def environ_for(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """For a fixture parametrised ``["sqlite", "postgres"]``."""
    environ = base_environ(tmp_path)
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def upload(client: TestClient[Litestar], data: bytes, name: str = "contacts.csv") -> str:
    """Store ``data`` as a kernel file (``POST /api/files``); its id."""
    stored = client.post("/api/files", params={"name": name}, content=data)
    assert stored.status_code == 201, stored.text
    return str(stored.json()["id"])


def as_utc(text: str) -> datetime:
    """A time from a response; SQLite gives a stored UTC time back without its zone."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
