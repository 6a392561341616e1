"""The login throttles count failed password attempts only, over HTTP, on SQLite and PostgreSQL.

A security review after issue 15 found the per-address throttle counting successful logins and
never giving them back: behind a proxy every user shares one address, so about 50 logins in 5
minutes for everyone together, then 429 for every login. An attempt is counted before its
password is checked (so attempts in flight count too) and given back when the password was
right. Here ``auth.login_max_attempts`` is 1, so an address may fail 10 times per window.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.identity.runtime import IP_ATTEMPTS_FACTOR
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

MAX_ATTEMPTS = 1
ADDRESS_LIMIT = MAX_ATTEMPTS * IP_ATTEMPTS_FACTOR
NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def strict(data_dir: Path, db_env: dict[str, str]) -> Iterator[tuple[TestClient[Litestar], Seeded]]:
    """An app allowing one failed login per account (ten per address) per window, and the
    seeded tenant ``acme``; every request comes from one client address."""
    env = {**db_env, "BACKPLANE_AUTH__LOGIN_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    seeded = seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        yield client, seeded


def login(client: TestClient[Litestar], email: str, password: str = PASSWORD) -> int:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    return response.status_code


def fail(client: TestClient[Litestar], count: int, start: int = 0) -> list[int]:
    """``count`` failed logins from the client's address, each for another (unknown) account,
    so that only the address throttle can refuse them."""
    return [
        login(client, f"nobody{i}@example.com", "wrong password 1")
        for i in range(start, start + count)
    ]


def test_successful_logins_never_use_up_the_address_limit(
    strict: tuple[TestClient[Litestar], Seeded],
) -> None:
    client, tenant = strict
    statuses = [login(client, tenant.email) for _ in range(ADDRESS_LIMIT + 5)]
    assert statuses == [200] * (ADDRESS_LIMIT + 5)


def test_the_address_limit_counts_failures_only_then_refuses_a_right_password(
    strict: tuple[TestClient[Litestar], Seeded],
) -> None:
    """Failures from an address use up its limit and successes in between do not; at the
    limit even the right password gets 429 (the password is not checked any more)."""
    client, tenant = strict
    assert fail(client, ADDRESS_LIMIT - 1) == [401] * (ADDRESS_LIMIT - 1)
    assert [login(client, tenant.email) for _ in range(3)] == [200] * 3
    assert fail(client, 1, start=ADDRESS_LIMIT) == [401]
    blocked = client.post("/api/auth/login", json={"email": tenant.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1


def test_concurrent_wrong_passwords_get_no_more_guesses_than_the_limit(
    strict: tuple[TestClient[Litestar], Seeded],
) -> None:
    """Each attempt is counted before its password is checked: of 12 guesses at once, one
    account's limit (1) is tried and the rest are refused before hashing."""
    client, tenant = strict
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(
            pool.map(lambda _: login(client, tenant.email, "wrong password 1"), range(12))
        )
    assert sorted(statuses) == [401] * MAX_ATTEMPTS + [429] * (12 - MAX_ATTEMPTS)


def test_a_right_current_password_does_not_count_against_the_account(
    strict: tuple[TestClient[Litestar], Seeded],
) -> None:
    """``PUT /api/me/password`` is throttled like a login: a right current password starts the
    account's count again, as a successful login does; a wrong one counts."""
    client, tenant = strict
    token = client.post("/api/auth/login", json={"email": tenant.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def change(current: str, new: str) -> int:
        nonlocal headers
        body = {"current_password": current, "new_password": new}
        response = client.put("/api/me/password", headers=headers, json=body)
        if response.status_code == 200:
            headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return response.status_code

    assert change(PASSWORD, NEW_PASSWORD) == 200
    assert change("wrong password 1", PASSWORD) == 403
    assert change(NEW_PASSWORD, PASSWORD) == 429
