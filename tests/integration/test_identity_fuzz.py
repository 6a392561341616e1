"""Issue 3, acceptance 6: schemathesis over the identity endpoints finds no 5xx.

One app per module (every installed plugin, migrated SQLite, the cheap Argon2 settings of
``make_settings``) is fuzzed in process through schemathesis' ASGI transport as tenant A's owner:
with the owner API key, or with a fresh owner access token (one refresh-token rotation per call,
so fuzzing ``logout`` or ``switch-tenant`` never spoils later calls). Every identity operation is
a test of its own, fed by schemathesis' Hypothesis strategy for it, with data that fits the
schema and data that does not; each response must pass schemathesis' ``not_a_server_error``.

The run is bounded and deterministic: ``MAX_EXAMPLES`` per operation and mode, derandomized, no
example database, no deadline.

Why not ``schemathesis.pytest.from_fixture(...).parametrize()``: its lazy loader writes
``request.node._nodeid``, which pytest 9.2 no longer has (``AttributeError`` at run time). The
strategies used here are schemathesis' documented way to fuzz from ordinary pytest tests.

Login attempts are throttled (a handful per account and per client address per window), so most
fuzzed logins answer 429: that is the throttle working, not a server error.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

MAX_EXAMPLES = 25
IDENTITY_PATHS = re.compile(
    r"^(/api/(auth/.*|me(/.*)?|tenants|tenant/.*|apikeys(/.*)?)|/\.well-known/jwks\.json)$"
)
IDENTITY_OPERATIONS = [
    "GET /.well-known/jwks.json",
    "POST /api/auth/login",
    "POST /api/auth/logout",
    "POST /api/auth/refresh",
    "POST /api/auth/switch-tenant",
    "GET /api/me",
    "PUT /api/me/password",
    "POST /api/tenants",
    "GET /api/tenant/members",
    "POST /api/tenant/members",
    "DELETE /api/tenant/members/{user_id}",
    "PATCH /api/tenant/members/{user_id}",
    "GET /api/tenant/plugins",
    "PUT /api/tenant/plugins/{plugin}",
    "GET /api/apikeys",
    "POST /api/apikeys",
    "DELETE /api/apikeys/{key_id}",
    "GET /api/auth/account",
    "POST /api/auth/verify-email/request",
    "GET /api/auth/verify-email",
    "POST /api/auth/verify-email",
    "POST /api/auth/password-reset",
    "GET /api/auth/password-reset/complete",
    "POST /api/auth/password-reset/complete",
    "GET /api/auth/invites/accept",
    "POST /api/auth/invites/accept",
    "GET /api/tenant/invites",
    "POST /api/tenant/invites",
    "DELETE /api/tenant/invites/{invite_id}",
]
USER_ONLY = {"/api/tenants", "/api/auth/switch-tenant", "/api/me/password"}
"""Operations only a user's access token may call (an API key gets 403 there)."""


class Fuzz:
    """The schema of a running app, and tenant A's owner credentials for it."""

    def __init__(self, schema: Any, tenant: Seeded) -> None:
        self.schema = schema
        self.tenant = tenant
        self._turn = itertools.count()
        login = schema["/api/auth/login"]["POST"].Case(
            body={"email": tenant.email, "password": PASSWORD}
        )
        # Set-up, not the fuzzed behaviour: on SQLite, the login's first write (its audit row)
        # can meet "database is locked" while the previous test's app is still winding down on
        # the same file (a known limit of deferred SQLite transactions, BEGIN IMMEDIATE being
        # the kernel-wide fix); a few tries with a pause get past it. The first request also
        # starts the app (its task runtime and worker) and hashes a password: on a loaded CI
        # machine that passed the client's default 10 s once, hence a longer wait here.
        for _ in range(5):
            response = login.call(timeout=60)
            if response.status_code not in (500, 503):
                break
            time.sleep(0.5)
        assert response.status_code == 200, response.text
        self.refresh_token: str = response.json()["refresh_token"]

    def access_token(self) -> str:
        case = self.schema["/api/auth/refresh"]["POST"].Case(
            body={"refresh_token": self.refresh_token}
        )
        response = case.call()
        assert response.status_code == 200, response.text
        pair = response.json()
        self.refresh_token = pair["refresh_token"]
        return str(pair["access_token"])

    def headers_for(self, path: str) -> dict[str, str]:
        """An access token where a user is needed, else the token and the API key in turn."""
        if path in USER_ONLY or next(self._turn) % 2:
            return {"Authorization": f"Bearer {self.access_token()}"}
        return dict(self.tenant.headers)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[PluginSet, Seeded]:
    """One migrated database per module, with tenant A (fuzzed as) and tenant B (bystander)."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "var"
    # A write that meets SQLite's lock waits at most 5 s (default 30), under the fuzzing
    # client's 10 s read timeout, so the set-up's login retry below sees the 503.
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_DB__SQLITE_BUSY_TIMEOUT_S": "5"}))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    seed_tenant(plugins, "globex")
    return plugins, tenant


@pytest.fixture
def fuzz(seeded: tuple[PluginSet, Seeded]) -> Iterator[Fuzz]:
    """A fresh app per test on the module's database.

    schemathesis' pytest plugin ends every ASGI lifespan when a test ends; a fresh app per test
    keeps the tests independent (restarting one app is covered by its own test at the end).
    """
    plugins, tenant = seeded
    app = create_app(plugins.settings, plugins=plugins)
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    try:
        yield Fuzz(schema, tenant)
    finally:
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()


def test_the_fuzzed_operations_are_the_whole_identity_api(fuzz: Fuzz) -> None:
    """A new or renamed identity route must join IDENTITY_OPERATIONS to be fuzzed."""
    labels = set()
    for result in fuzz.schema.get_all_operations():
        operation = result.ok()
        if IDENTITY_PATHS.match(operation.path):
            labels.add(f"{operation.method.upper()} {operation.path}")
    assert labels == set(IDENTITY_OPERATIONS)


NO_NEGATIVE = {
    # Data that does not fit the schema needs an input to spoil: these take none ...
    "GET /.well-known/jwks.json",
    "GET /api/me",
    "GET /api/tenant/members",
    "GET /api/tenant/plugins",
    "GET /api/apikeys",
    "GET /api/auth/account",
    "POST /api/auth/verify-email/request",
    # ... or only a path segment that any string fits.
    "DELETE /api/apikeys/{key_id}",
}
FUZZ_RUNS = [
    *((label, GenerationMode.POSITIVE) for label in IDENTITY_OPERATIONS),
    *(
        (label, GenerationMode.NEGATIVE)
        for label in IDENTITY_OPERATIONS
        if label not in NO_NEGATIVE
    ),
]


@pytest.mark.parametrize(("label", "mode"), FUZZ_RUNS)
def test_identity_operation_never_answers_5xx(fuzz: Fuzz, label: str, mode: GenerationMode) -> None:
    method, path = label.split(" ", 1)
    operation = fuzz.schema[path][method]
    calls = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode), email=st.none() | st.emails())
    def run(case: Any, email: str | None) -> None:
        calls.append(case)
        if mode.is_positive and email and isinstance(case.body, dict) and "email" in case.body:
            # The schema only bounds an email's length: reach past the address check sometimes.
            case.body["email"] = email[:320]
        case.call_and_validate(headers=fuzz.headers_for(path), checks=[not_a_server_error])

    run()
    assert calls, f"schemathesis generated no {mode} case for {label}"


def test_a_restarted_app_still_verifies_passwords(seeded: tuple[PluginSet, Seeded]) -> None:
    """Found by the fuzz: stop and start one app's lifespan (as test clients do), then log in."""
    from litestar.testing import TestClient

    plugins, tenant = seeded
    app = create_app(plugins.settings, plugins=plugins)
    body = {"email": tenant.email, "password": PASSWORD}
    with TestClient(app) as client:
        assert client.post("/api/auth/login", json=body).status_code == 200
    with TestClient(app) as client:
        again = client.post("/api/auth/login", json=body)
        assert again.status_code == 200, again.text
