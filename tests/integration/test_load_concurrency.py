"""Issue 15, acceptance 2: under load no request answers 500, and a slow tenant never holds up
another one beyond the documented queue timeout.

Each test starts a real ``backplane serve`` process on a free loopback port, on SQLite and on
PostgreSQL (``db_env``: there the app connects as a role that owns nothing and cannot bypass
row-level security), with two seeded tenants, and talks to it over HTTP with
``httpx.AsyncClient``: the same sockets, event loop and connection pool a deployment has, which an
in-process ASGI client would not exercise.

- :func:`test_64_concurrent_requests_of_every_kind_answer_without_5xx`: rounds of
  ``CONCURRENCY`` concurrent authenticated requests, on the default pool: one mixing every kind
  the kernel serves (the caller, refresh-token rotation, the list endpoints, V2 inference on a
  shipped example model, usage events, a plugin route), then one round of each kind alone
  (issue 15 item 1 took 16 of one kind). Half go to each tenant; each kind is sent with an
  access token and with an API key. Every request must get its success status within
  ``ANSWER_BOUND_S``. No 5xx is accepted, not even a 503: with the default pool these short
  requests hold a connection for milliseconds, so one that waited the whole pool queue timeout
  means a connection was held far longer than any of them needs (the double checkout of issue 15
  item 1: a request holding one pooled connection while it waits for a second).
- :func:`test_every_kind_of_request_is_served_by_a_pool_of_one_connection`: login, then every
  kind once, one at a time, with ``db.pool_size`` 1: a request path that holds two pooled
  connections waits for itself, on any machine (the 64 concurrent requests only meet it when
  enough such requests overlap, which depends on the machine's speed).
- :func:`test_a_tenant_saturating_the_pool_does_not_stall_another_tenant`: a small pool
  (``db.pool_size`` 2, ``db.max_overflow`` 0, ``db.pool_timeout_s`` 1) and tenant A sending more
  requests that hold their session for ``SLOW_S`` (the kitchen_sink sample plugin's ``/slow``
  route) than the pool has connections. Tenant B's ``GET /api/me`` must be answered, 200 or 503
  with ``Retry-After``, within the queue timeout plus ``MARGIN_S``, never after A's slow requests
  end; A's requests beyond the pool must get 503 with ``Retry-After`` as quickly, never 500; and
  B is served normally once A's requests are done.

The last two need ``db.pool_size``, ``db.max_overflow`` and ``db.pool_timeout_s`` to apply on
SQLite too: SQLAlchemy gives an async SQLite file database a queue pool of its own (5 + 10
connections, 30 s), which is what stalled in issue 15 item 1.

Bounded: a fixed number of rounds (stopping after the first that shows a problem), a timeout on
every request, and the server process is killed if it does not stop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from backplane.loading import load_plugins
from backplane.models import example_model
from backplane.plugins import PluginSet
from tests.cli import log_tail, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, TEST_PASSWORD_ENV, Seeded, seed_tenant

pytestmark = pytest.mark.slow  # real `backplane serve` processes

CONCURRENCY = 64
ANSWER_BOUND_S = 10.0
"""Every answer of the load rounds arrives within this (issue 15 saw 30 s stalls)."""
REQUEST_TIMEOUT_S = 15.0
"""The client gives up on a request after this: a stalled server fails the test, never hangs it."""
START_TIMEOUT_S = 60.0

POOL_SIZE = 2
MAX_OVERFLOW = 0
POOL_TIMEOUT_S = 1.0
SLOW_S = 6.0
"""How long each of tenant A's slow requests holds its session (well above the queue timeout)."""
MARGIN_S = 2.5
"""Scheduling and request handling on top of the queue timeout, on a loaded two-core machine."""
SLOW_REQUESTS = POOL_SIZE + MAX_OVERFLOW + 3
HOLD_DELAY_S = 0.8
"""How long after sending A's slow requests B starts: enough for A to check the pool out."""

INFER_MODEL = "iris_classifier"


# -- the server ----------------------------------------------------------------------------------
@dataclass
class Deployment:
    """A migrated database with two seeded tenants, and the environment to serve it with."""

    env: dict[str, str]
    a: Seeded
    b: Seeded
    log: Path

    @contextmanager
    def served(self, **extra_env: str) -> Iterator[str]:
        """``backplane serve`` on a free port with this environment plus ``extra_env``; yields
        the base URL once ``/health/ready`` answers 200."""
        with serving({**self.env, **extra_env}, self.log, timeout=START_TIMEOUT_S) as server:
            yield server.base


@pytest.fixture
def deployment(data_dir: Path, db_env: dict[str, str], tmp_path: Path) -> Deployment:
    """Tenants ``acme`` (A) and ``globex`` (B) on SQLite or PostgreSQL, kitchen_sink loaded."""
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        **TEST_PASSWORD_ENV,
        **db_env,
        "BACKPLANE_PLUGINS": "kitchen_sink",
        # The tests log in a few dozen times from one address; the throttle is tested elsewhere.
        "BACKPLANE_AUTH__LOGIN_MAX_ATTEMPTS": "1000",
    }
    plugins: PluginSet = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    return Deployment(
        env=env,
        a=seed_tenant(plugins, "acme"),
        b=seed_tenant(plugins, "globex"),
        log=tmp_path / "serve.log",
    )


# -- requests and answers ------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One request and the status that means it succeeded."""

    label: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    params: dict[str, str] | None = None
    expect: int = 200


@dataclass(frozen=True)
class Answer:
    call: Call
    elapsed_s: float
    status: int | None = None
    retry_after: str | None = None
    payload: Any = None
    text: str = ""
    error: str | None = None

    @property
    def is_queue_timeout(self) -> bool:
        """A 503 that tells the client when to come back: the documented pool-exhaustion answer."""
        return self.status == 503 and bool(self.retry_after)

    def describe(self) -> str:
        outcome = self.error or f"{self.status} {self.text[:200]!r}"
        return f"{self.call.label}: {outcome} after {self.elapsed_s:.2f} s"


async def send(client: httpx.AsyncClient, call: Call) -> Answer:
    started = time.monotonic()
    try:
        response = await client.request(
            call.method, call.path, headers=call.headers, json=call.body, params=call.params
        )
    except httpx.TimeoutException:
        return Answer(call, time.monotonic() - started, error="no answer (client timeout)")
    except httpx.TransportError as exc:
        return Answer(call, time.monotonic() - started, error=f"transport error: {exc!r}")
    elapsed = time.monotonic() - started
    payload = response.json() if response.is_success and response.content else None
    return Answer(
        call,
        elapsed,
        status=response.status_code,
        retry_after=response.headers.get("retry-after"),
        payload=payload,
        text=response.text,
    )


def client_for(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        timeout=REQUEST_TIMEOUT_S,
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them: sending on
        # one the server is closing at that moment is a client race (ReadError), not an answer.
        limits=httpx.Limits(
            max_connections=CONCURRENCY * 2,
            max_keepalive_connections=CONCURRENCY,
            keepalive_expiry=2.0,
        ),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the load mix --------------------------------------------------------------------------------
@dataclass
class Caller:
    """A tenant's owner as the load sees it: an access token, the API key, refresh tokens."""

    seeded: Seeded
    access_token: str = ""
    refresh_tokens: list[str] = field(default_factory=list)

    def login_call(self) -> Call:
        body = {"email": self.seeded.email, "password": PASSWORD}
        return Call(f"login as {self.seeded.slug}", "POST", "/api/auth/login", {}, body=body)

    async def login(self, client: httpx.AsyncClient) -> tuple[str, str]:
        answer = await send(client, self.login_call())
        assert answer.status == 200, answer.describe()
        return str(answer.payload["access_token"]), str(answer.payload["refresh_token"])

    async def stock_refresh_tokens(self, client: httpx.AsyncClient, count: int) -> None:
        """Hold ``count`` refresh tokens of separate sessions: rotating one token twice is reuse
        (the whole family is revoked), so every concurrent refresh needs its own session."""
        while len(self.refresh_tokens) < count:
            self.refresh_tokens.append((await self.login(client))[1])


def infer_body() -> dict[str, Any]:
    width = example_model(INFER_MODEL).inputs[0].shape[1]
    rows = [[0.5 + 0.1 * i] * width for i in range(4)]
    return {
        "inputs": [
            {
                "name": "float_input",
                "shape": [len(rows), width],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }


Kind = Callable[[Caller, dict[str, str]], Call]
"""Builds one request of a kind for a caller with the given credentials (label filled later)."""


def _get(path: str) -> Kind:
    return lambda _caller, auth: Call("", "GET", path, auth)


def _refresh(caller: Caller, _auth: dict[str, str]) -> Call:
    token = caller.refresh_tokens.pop()
    return Call("", "POST", "/api/auth/refresh", {}, body={"refresh_token": token})


def _infer(_caller: Caller, auth: dict[str, str]) -> Call:
    return Call("", "POST", f"/v2/models/{INFER_MODEL}/infer", auth, body=infer_body())


def _events(_caller: Caller, auth: dict[str, str]) -> Call:
    event = {"transaction_id": f"load-{uuid.uuid4().hex}", "code": "api.requests"}
    return Call("", "POST", "/api/billing/events", auth, body={"events": [event]})


KINDS: dict[str, Kind] = {
    "me": _get("/api/me"),
    "refresh": _refresh,
    "api keys": _get("/api/apikeys"),
    "members": _get("/api/tenant/members"),
    "plugin switches": _get("/api/tenant/plugins"),
    "models": _get("/api/models"),
    "usage": _get("/api/billing/usage"),
    "plans": _get("/api/billing/plans"),
    "webhooks": _get("/api/billing/webhooks"),
    "invoices": _get("/api/billing/invoices"),
    "notes (plugin route)": _get("/api/kitchen_sink/notes"),
    "v2 infer": _infer,
    "usage events": _events,
}

Plan = list[tuple[int, str, bool]]
"""A round: (caller index, kind, use the API key rather than an access token) per request."""


def how(call: Call) -> str:
    """Which credential ``call`` carries, for its label."""
    authorization = call.headers.get("Authorization", "")
    if not authorization:
        return " (refresh token)"
    return " (API key)" if authorization.startswith("Bearer bp_") else " (access token)"


def mixed_round() -> Plan:
    """Every kind in one round: the callers alternate, the kinds cycle, and each kind is sent
    with an access token and with the API key."""
    names = list(KINDS)
    plan = []
    for i in range(CONCURRENCY):
        pair = i // 2
        plan.append((i % 2, names[pair % len(names)], (pair // len(names)) % 2 == 1))
    return plan


def one_kind_round(name: str) -> Plan:
    """``CONCURRENCY`` requests of one kind (issue 15 item 1 needed 16 of ``me`` to stall)."""
    return [(i % 2, name, (i // 2) % 2 == 1) for i in range(CONCURRENCY)]


ROUNDS: list[tuple[str, Plan]] = [
    ("every kind at once", mixed_round()),
    *((f"{CONCURRENCY} x {name}", one_kind_round(name)) for name in KINDS),
]


async def load_round(client: httpx.AsyncClient, callers: list[Caller], plan: Plan) -> list[Answer]:
    """One round of concurrent requests; refresh answers restock the callers' refresh tokens."""
    for index, caller in enumerate(callers):
        needed = sum(1 for who, name, _ in plan if who == index and name == "refresh")
        await caller.stock_refresh_tokens(client, needed)
    calls = []
    for who, name, use_key in plan:
        caller = callers[who]
        auth = caller.seeded.headers if use_key else bearer(caller.access_token)
        call = KINDS[name](caller, auth)
        calls.append((caller, replace(call, label=f"{name} as {caller.seeded.slug}{how(call)}")))
    answers = await asyncio.gather(*(send(client, call) for _, call in calls))
    for (caller, call), answer in zip(calls, answers, strict=True):
        if call.path == "/api/auth/refresh" and answer.status == 200:
            caller.refresh_tokens.append(str(answer.payload["refresh_token"]))
    return list(answers)


def load_problems(answers: list[Answer]) -> list[str]:
    return [
        answer.describe()
        for answer in answers
        if answer.status != answer.call.expect or answer.elapsed_s > ANSWER_BOUND_S
    ]


async def run_load(base: str, deployment: Deployment) -> tuple[int, list[str]]:
    """Run the rounds in turn; return how many requests were sent and the problems of the first
    round that had any (the later ones would only repeat them, slowly)."""
    sent = 0
    async with client_for(base) as client:
        callers = [Caller(deployment.a), Caller(deployment.b)]
        for caller in callers:
            caller.access_token = (await caller.login(client))[0]
        for name, plan in ROUNDS:
            answers = await load_round(client, callers, plan)
            sent += len(answers)
            problems = load_problems(answers)
            if problems:
                statuses = sorted({str(a.status or a.error) for a in answers})
                header = f"round {name!r}: {len(problems)} of {len(answers)} failed {statuses}"
                return sent, [header, *problems]
    return sent, []


def test_64_concurrent_requests_of_every_kind_answer_without_5xx(deployment: Deployment) -> None:
    with deployment.served() as base:
        sent, problems = asyncio.run(run_load(base, deployment))
    assert not problems, "\n".join(problems) + f"\n-- server log:\n{log_tail(deployment.log)}"
    assert sent == len(ROUNDS) * CONCURRENCY


# -- one pooled connection is enough for every request ----------------------------------------
ONE_CONNECTION = {"BACKPLANE_DB__POOL_SIZE": "1", "BACKPLANE_DB__MAX_OVERFLOW": "0"}


async def one_at_a_time(base: str, deployment: Deployment) -> list[str]:
    """Log in, then every kind once with each credential, sequentially; the first failure."""
    async with client_for(base) as client:
        caller = Caller(deployment.a)
        login = await send(client, caller.login_call())
        if login.status != 200 or login.elapsed_s > ANSWER_BOUND_S:
            return [login.describe()]
        caller.access_token = str(login.payload["access_token"])
        await caller.stock_refresh_tokens(client, 2)
        for name, kind in KINDS.items():
            for use_key in (False, True):
                auth = caller.seeded.headers if use_key else bearer(caller.access_token)
                call = kind(caller, auth)
                answer = await send(client, replace(call, label=f"{name}{how(call)}"))
                if answer.status != answer.call.expect or answer.elapsed_s > ANSWER_BOUND_S:
                    return [answer.describe()]
    return []


def test_every_kind_of_request_is_served_by_a_pool_of_one_connection(
    deployment: Deployment,
) -> None:
    """No request path holds two pooled connections (issue 15 item 1): with a pool of one, a
    request that holds the request session's connection and asks for a second one waits for
    itself. The 64-request test only meets that when enough such requests overlap, which
    depends on the machine's speed; this finds it on any machine."""
    with deployment.served(**ONE_CONNECTION) as base:
        problems = asyncio.run(one_at_a_time(base, deployment))
    assert not problems, "\n".join(problems) + f"\n-- server log:\n{log_tail(deployment.log)}"


# -- a slow tenant and a bystander ---------------------------------------------------------------
SMALL_POOL = {
    "BACKPLANE_DB__POOL_SIZE": str(POOL_SIZE),
    "BACKPLANE_DB__MAX_OVERFLOW": str(MAX_OVERFLOW),
    "BACKPLANE_DB__POOL_TIMEOUT_S": str(POOL_TIMEOUT_S),
}


async def saturate(base: str, deployment: Deployment) -> dict[str, list[Answer]]:
    """A's slow requests, B's requests while they hold the pool, B's request after they end."""
    async with client_for(base) as client:
        b = Caller(deployment.b)
        b.access_token = (await b.login(client))[0]
        slow = Call(
            "slow as acme",
            "POST",
            "/api/kitchen_sink/slow",
            deployment.a.headers,
            params={"seconds": str(SLOW_S)},
        )
        a_requests = [asyncio.create_task(send(client, slow)) for _ in range(SLOW_REQUESTS)]
        await asyncio.sleep(HOLD_DELAY_S)
        bystander = [
            Call("me as globex (access token)", "GET", "/api/me", bearer(b.access_token)),
            Call("me as globex (API key)", "GET", "/api/me", deployment.b.headers),
        ]
        during = await asyncio.gather(*(send(client, call) for call in bystander))
        a_answers = await asyncio.gather(*a_requests)
        after = await asyncio.gather(*(send(client, call) for call in bystander))
    return {"a": list(a_answers), "b_during": list(during), "b_after": list(after)}


def test_a_tenant_saturating_the_pool_does_not_stall_another_tenant(
    deployment: Deployment,
) -> None:
    with deployment.served(**SMALL_POOL) as base:
        answers = asyncio.run(saturate(base, deployment))
    log = f"\n-- server log:\n{log_tail(deployment.log)}"
    bound = POOL_TIMEOUT_S + MARGIN_S

    for answer in answers["b_during"]:
        assert answer.status == 200 or answer.is_queue_timeout, answer.describe() + log
        assert answer.elapsed_s <= bound, (
            f"B waited longer than the queue timeout ({POOL_TIMEOUT_S} s) + {MARGIN_S} s: "
            f"{answer.describe()}{log}"
        )

    held = [a for a in answers["a"] if a.status == 200]
    refused = [a for a in answers["a"] if a.is_queue_timeout]
    assert len(held) + len(refused) == SLOW_REQUESTS, (
        "A's requests must be served or refused with 503 and Retry-After:\n"
        + "\n".join(a.describe() for a in answers["a"])
        + log
    )
    # The pool is the bound (the settings applied) and the slow route really held it.
    assert 1 <= len(held) <= POOL_SIZE + MAX_OVERFLOW, [a.describe() for a in answers["a"]]
    assert all(a.payload["held_s"] >= SLOW_S for a in held), [a.payload for a in held]
    for answer in refused:
        assert answer.elapsed_s <= bound, f"a refusal must not stall: {answer.describe()}"

    for answer in answers["b_after"]:
        assert answer.status == 200, f"B once A is done: {answer.describe()}{log}"
        assert answer.elapsed_s <= ANSWER_BOUND_S, answer.describe()
