"""Issue 20, acceptance 2 over real HTTP, on SQLite and real PostgreSQL: aliases name versions
on the V2 API, a split alias sends requests to both versions and a routing key sticks to one
(on either of two application instances, each with its own cache), a change and a rollback
reach the other instance within ``inference.registry_cache_s``, every change is in the alias
history and the audit trail, a worse candidate is not promoted, and tenant B can neither see
nor set tenant A's aliases (404, as for a model that does not exist)."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.db.tenancy import bind_tenant
from backplane.inference.aliases import get_alias
from backplane.inference.promotion import promote_if_better
from backplane.inference.rollout import AliasTarget, route
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.testing import SeededTenant
from tests.app_helpers import rails
from tests.cli import run_cli, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import TEST_PASSWORD_ENV, seed_tenant

BOUND_S = 1.0
"""``inference.registry_cache_s`` for these tests: how long another process may lag."""
SLACK_S = 0.5
"""What a request itself may take on a loaded CI machine, on top of the bound."""
IRIS = resource("iris_classifier.onnx").read_bytes()
ROWS = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
INFER = {
    "inputs": [
        {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def other_bytes() -> bytes:
    """The same model with another doc string: another file, so another loaded session."""
    model = onnx.load_from_string(IRIS)
    model.doc_string = "version two"
    return model.SerializeToString()


class Stack:
    """Two application instances on one database (two server processes, each with its own
    registry cache), tenants A and B, and A's model ``scorer`` with versions 1 and 2.

    On SQLite only one: several processes writing one SQLite file is not a deployment the
    server supports (their task relays and writes lock each other out); the tests of what
    crosses processes run on PostgreSQL."""

    def __init__(self, one: TestClient[Litestar], two: TestClient[Litestar] | None,
                 a: SeededTenant, b: SeededTenant, env: dict[str, str]) -> None:  # fmt: skip
        self.one, self._two, self.a, self.b, self.env = one, two, a, b, env

    @property
    def two(self) -> TestClient[Litestar]:
        """The second application (``pg_stack`` only)."""
        assert self._two is not None, "two server processes need PostgreSQL: use pg_stack"
        return self._two

    def call(self, who: SeededTenant, method: str, url: str, *, via: Any = None, **kw: Any) -> Any:
        return (via or self.one).request(method, url, headers=who.headers, **kw)

    def served(self, via: TestClient[Litestar], url: str = "/v2/models/scorer/infer",
               key: str | None = None) -> str:  # fmt: skip
        body = dict(INFER, parameters={"routing_key": key}) if key else INFER
        answer = via.post(url, json=body, headers=self.a.headers)
        assert answer.status_code == 200, answer.text
        version: str = answer.json()["model_version"]
        return version

    def put(self, alias: str, via: Any = None, **target: Any) -> Any:
        return self.call(self.a, "PUT", f"/api/models/scorer/aliases/{alias}", via=via, json=target)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Stack]:
    yield from _stack(request, data_dir, request.param)


@pytest.fixture
def pg_stack(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Stack]:
    """PostgreSQL only: what crosses server processes (tests using it are marked postgres)."""
    yield from _stack(request, data_dir, "postgres")


@pytest.fixture
def sqlite_stack(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Stack]:
    """SQLite only: paths that are the same on both databases, run once."""
    yield from _stack(request, data_dir, "sqlite")


def _stack(request: pytest.FixtureRequest, data_dir: Path, database: str) -> Iterator[Stack]:
    env = {
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_INFERENCE__REGISTRY_CACHE_S": str(BOUND_S),
    }
    if database == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    with contextlib.ExitStack() as apps:
        one = apps.enter_context(TestClient(create_app(settings, plugins=plugins)))
        two = None
        if database == "postgres":
            second = load_plugins(make_settings(data_dir, env))
            two = apps.enter_context(TestClient(create_app(second.settings, plugins=second)))
        stack = Stack(one, two, a, b, {"BACKPLANE_DATA_DIR": str(data_dir), **env})
        for data in (IRIS, other_bytes()):
            files = {"file": ("m.onnx", data, "application/octet-stream")}
            made = stack.call(a, "POST", "/api/models", files=files, data={"name": "scorer"})
            assert made.status_code == 201, made.text
        yield stack


def test_an_alias_names_a_version_and_unversioned_requests_follow_production(stack: Stack) -> None:
    assert stack.served(stack.one) == "2"  # no production alias: the latest, as before
    made = stack.put("production", version="1")
    assert made.status_code == 200, made.text
    assert made.json()["version"] == "1"
    assert made.json()["updated_by"] == f"api_key:{stack.a.api_key_id}"
    assert stack.served(stack.one) == "1"
    assert stack.served(stack.one, "/v2/models/scorer/versions/production/infer") == "1"
    assert stack.served(stack.one, "/v2/models/scorer/versions/2/infer") == "2"
    assert stack.put("candidate", version="2").status_code == 200
    assert stack.served(stack.one, "/v2/models/scorer/versions/candidate/infer") == "2"
    metadata = stack.call(stack.a, "GET", "/v2/models/scorer/versions/candidate")
    assert metadata.status_code == 200
    assert metadata.json()["versions"] == ["1", "2"]
    shown = stack.call(stack.a, "GET", "/api/models/scorer/aliases/candidate").json()
    assert (shown["version"], shown["split_version"]) == ("2", None)
    assert stack.call(stack.a, "DELETE", "/api/models/scorer/aliases/production").status_code == 204
    assert stack.served(stack.one) == "2"
    gone = stack.call(stack.a, "POST", "/v2/models/scorer/versions/production/infer", json=INFER)
    assert gone.status_code == 404, gone.text


@pytest.mark.parametrize(
    ("alias", "body", "status", "says"),
    [
        ("Prod!", {"version": "1"}, 422, "alias 'Prod!'"),
        ("production", {"version": "9"}, 404, "no version '9'"),
        ("production", {"version": "1", "split_version": "2"}, 422, "between 1 and 99"),
        ("production", {"version": "1", "split_percent": 10}, 422, "needs a split_version"),
        ("production", {"version": "1", "split_version": "1", "split_percent": 5}, 422, "differ"),
        ("production", {"version": "1", "split_version": "2", "split_percent": 101}, 400, ""),
        ("production", {"version": "1", "weight": 3}, 400, ""),
    ],
)
def test_bad_alias_changes_are_refused_with_the_reason(
    stack: Stack, alias: str, body: dict[str, Any], status: int, says: str
) -> None:
    answer = stack.call(stack.a, "PUT", f"/api/models/scorer/aliases/{alias}", json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_rollback_of_a_new_alias_and_unknown_ones_are_refused(stack: Stack) -> None:
    url = "/api/models/scorer/aliases/production"
    assert stack.call(stack.a, "POST", f"{url}/rollback").status_code == 404
    assert stack.put("production", version="1").status_code == 200
    refused = stack.call(stack.a, "POST", f"{url}/rollback")
    assert refused.status_code == 409
    assert "no previous target" in refused.text
    assert stack.call(stack.a, "GET", "/api/models/nothing/aliases/production").status_code == 404
    missing = stack.call(
        stack.a, "PUT", "/api/models/nothing/aliases/production", json={"version": "1"}
    )
    assert missing.status_code == 404


def test_a_split_sends_traffic_to_both_versions_and_a_key_sticks_on_every_process(
    stack: Stack,
) -> None:
    assert (
        stack.put("production", version="1", split_version="2", split_percent=10).status_code == 200
    )
    unkeyed = [stack.served(stack.one) for _ in range(200)]  # P(no "2") = 0.9**200, about 1e-9
    assert set(unkeyed) == {"1", "2"}
    # 30 keys that the routing function sends to version 1 and 10 to version 2 (at 10 %, the
    # first 40 keys could all land on version 1): the server must agree with it, every time.
    target = AliasTarget(version="1", split_version="2", split_percent=10)
    expected: dict[str, list[str]] = {"1": [], "2": []}
    for i in itertools.count():
        key = f"user-{i}"
        version = route(
            target, tenant_id=stack.a.tenant_id, name="scorer", alias="production", routing_key=key
        )
        if len(expected[version]) < (30 if version == "1" else 10):
            expected[version].append(key)
        if len(expected["1"]) + len(expected["2"]) == 40:
            break
    keys = expected["1"] + expected["2"]
    first = {key: stack.served(stack.one, key=key) for key in keys}
    assert first == {key: v for v, ks in expected.items() for key in ks}
    for via in [stack.one, *([stack._two] if stack._two else []), stack.one]:
        assert {key: stack.served(via, key=key) for key in keys} == first
    header = stack.one.post(
        "/v2/models/scorer/infer", json=INFER, headers={**stack.a.headers, "X-Routing-Key": keys[0]}
    )
    assert header.json()["model_version"] == first[keys[0]]
    # per-version statistics of this process: every request above, split as answered
    answered = unkeyed + [v for v in first.values()] * 3 + [first[keys[0]]]
    stats = stack.call(stack.a, "GET", "/v2/models/scorer/stats").json()["model_stats"]
    counts = {s["version"]: s["inference_stats"]["success"]["count"] for s in stats}
    assert counts == {"1": answered.count("1"), "2": answered.count("2")}


def test_a_key_beyond_the_limit_is_refused(stack: Stack) -> None:
    body = dict(INFER, parameters={"routing_key": "k" * 257})
    answer = stack.call(stack.a, "POST", "/v2/models/scorer/infer", json=body)
    assert answer.status_code == 400
    assert "routing_key" in answer.text


def until_served(stack: Stack, via: TestClient[Litestar], version: str, since: float) -> float:
    """Seconds from ``since`` until ``via`` serves ``version``; fails past the bound."""
    while stack.served(via) != version:
        assert time.monotonic() - since <= BOUND_S + SLACK_S, f"still not {version}"
        time.sleep(0.05)
    return time.monotonic() - since


@pytest.mark.postgres
def test_a_change_and_a_rollback_reach_the_other_process_within_the_bound(
    pg_stack: Stack,
) -> None:
    stack = pg_stack
    assert stack.put("production", version="1").status_code == 200
    time.sleep(BOUND_S)
    assert stack.served(stack.two) == "1"  # now cached by process two
    assert stack.put("production", version="2").status_code == 200
    changed = time.monotonic()
    assert stack.served(stack.one) == "2"  # the changing process: at once
    assert until_served(stack, stack.two, "2", changed) <= BOUND_S + SLACK_S
    rolled = stack.call(
        stack.a, "POST", "/api/models/scorer/aliases/production/rollback", via=stack.two
    )
    assert rolled.status_code == 200
    assert rolled.json()["version"] == "1"
    changed = time.monotonic()
    assert stack.served(stack.two) == "1"
    assert until_served(stack, stack.one, "1", changed) <= BOUND_S + SLACK_S

    history = stack.call(stack.a, "GET", "/api/models/scorer/aliases/production/history").json()
    assert [(h["action"], h["previous_version"], h["version"]) for h in history] == [
        ("rollback", "2", "1"),
        ("set", "1", "2"),
        ("set", None, "1"),
    ]
    assert all(
        h["changed_by"] == f"api_key:{stack.a.api_key_id}" and h["changed_at"] for h in history
    )
    audit = stack.call(stack.a, "GET", "/api/audit", params={"action": "model.alias_changed"})
    assert audit.status_code == 200, audit.text
    rows = audit.json()["events"] if "events" in audit.json() else audit.json()["items"]
    assert [r["details"]["action"] for r in rows] == ["rollback", "set", "set"]
    assert {r["target_id"] for r in rows} == {"scorer@production"}


def test_the_cli_moves_and_rolls_back_an_alias_and_the_server_follows(
    sqlite_stack: Stack,
) -> None:
    stack = sqlite_stack  # the CLI path is the same on both databases: run once
    assert stack.put("production", version="1").status_code == 200
    moved = run_cli(
        "models", "alias", "scorer", "production", "2", "--tenant", "acme", env=stack.env
    )
    assert moved.returncode == 0, moved.stderr
    assert "scorer@production -> version 2 for acme" in moved.stdout
    assert until_served(stack, stack.one, "2", time.monotonic()) <= BOUND_S + SLACK_S
    back = run_cli("models", "rollback", "scorer", "--tenant", "acme", env=stack.env)
    assert back.returncode == 0, back.stderr
    assert "rolled back to version 1" in back.stdout
    assert until_served(stack, stack.one, "1", time.monotonic()) <= BOUND_S + SLACK_S
    history = stack.call(stack.a, "GET", "/api/models/scorer/aliases/production/history").json()
    assert history[0]["changed_by"].startswith("operator")
    bad = run_cli(
        "models", "rollback", "scorer", "--tenant", "acme", "--alias", "nope", env=stack.env
    )
    assert bad.returncode != 0
    assert "no alias 'nope'" in bad.stderr


@pytest.mark.postgres
def test_concurrent_changes_of_one_alias_keep_a_consistent_history(pg_stack: Stack) -> None:
    stack = pg_stack
    two = stack.two

    def change(i: int) -> int:
        via = stack.one if i % 2 else two
        return int(stack.put("production", via=via, version=str(1 + i % 2)).status_code)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(change, range(16))) == [200] * 16
    history = stack.call(stack.a, "GET", "/api/models/scorer/aliases/production/history").json()
    assert len(history) == 16
    newest_first = list(history)
    for newer, older in itertools.pairwise(newest_first):
        assert newer["previous_version"] == older["version"]  # every change saw the one before
    assert newest_first[-1]["previous_version"] is None
    now = stack.call(stack.a, "GET", "/api/models/scorer/aliases/production").json()
    assert now["version"] == newest_first[0]["version"]


def test_a_worse_candidate_is_not_promoted_and_a_better_one_is(stack: Stack) -> None:
    assert stack.put("production", version="1").status_code == 200
    app = stack.one.app

    async def promote(metrics: dict[str, float]) -> tuple[bool, str]:
        async with rails(app).database.sessions() as session:
            bind_tenant(session, stack.a.tenant_id)
            decision = await promote_if_better(
                session, rails(app).models, stack.a.tenant_id, "scorer", "2", metrics,
                {"auc": 0.85}, metric="auc", higher_is_better=True, margin=0.01,
            )  # fmt: skip
            await session.commit()
            row = await get_alias(session, stack.a.tenant_id, "scorer", "production")
            return decision.promote, row.version

    assert stack.one.blocking_portal.call(promote, {"auc": 0.80}) == (False, "1")
    assert stack.served(stack.one) == "1"
    assert stack.one.blocking_portal.call(promote, {"auc": 0.90}) == (True, "2")
    assert stack.served(stack.one) == "2"
    history = stack.call(stack.a, "GET", "/api/models/scorer/aliases/production/history").json()
    assert [h["action"] for h in history] == ["promote", "set"]


def test_tenant_b_can_neither_see_nor_set_a_aliases(stack: Stack) -> None:
    assert stack.put("production", version="1").status_code == 200
    base = "/api/models/scorer/aliases/production"
    for method, url, body in [
        ("GET", base, None),
        ("GET", f"{base}/history", None),
        ("PUT", base, {"version": "2"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rollback", None),
        ("POST", "/v2/models/scorer/versions/production/infer", INFER),
        ("GET", "/v2/models/scorer/versions/production", None),
    ]:
        answer = stack.call(stack.b, method, url, json=body)
        missing = stack.call(stack.b, method, url.replace("scorer", "no-such-model"), json=body)
        assert answer.status_code == 404, (method, url, answer.text)
        assert answer.text == missing.text.replace("no-such-model", "scorer"), (method, url)
    shown = stack.call(stack.a, "GET", base).json()
    assert shown["version"] == "1"
    assert len(stack.call(stack.a, "GET", f"{base}/history").json()) == 1


def test_versions_with_the_same_file_are_told_apart_in_answers_and_statistics(stack: Stack) -> None:
    files = {"file": ("m.onnx", IRIS, "application/octet-stream")}
    made = stack.call(stack.a, "POST", "/api/models", files=files, data={"name": "scorer"})
    assert made.status_code == 201
    assert made.json()["version"] == "3"
    assert (
        stack.put("production", version="1", split_version="3", split_percent=50).status_code == 200
    )
    answered = [stack.served(stack.one) for _ in range(60)]  # P(one version only) ~ 1.7e-18
    assert set(answered) == {"1", "3"}
    stats = stack.call(stack.a, "GET", "/v2/models/scorer/stats").json()["model_stats"]
    counts = {s["version"]: s["inference_stats"]["success"]["count"] for s in stats}
    assert counts == {"1": answered.count("1"), "2": 0, "3": answered.count("3")}


def test_changing_an_alias_needs_models_manage(stack: Stack) -> None:
    made = stack.call(stack.a, "POST", "/api/apikeys", json={"name": "app", "role": "member"})
    assert made.status_code == 201, made.text
    member = {"Authorization": f"Bearer {made.json()['key']}"}
    assert stack.put("production", version="1").status_code == 200
    url = "/api/models/scorer/aliases/production"
    assert stack.one.get(url, headers=member).status_code == 200  # reading: models.read
    for method, path, body in [
        ("PUT", url, {"version": "2"}),
        ("DELETE", url, None),
        ("POST", f"{url}/rollback", None),
    ]:
        answer = stack.one.request(method, path, json=body, headers=member)
        assert answer.status_code == 403, (method, path, answer.text)
    assert stack.call(stack.a, "GET", url).json()["version"] == "1"


@pytest.mark.postgres
def test_a_real_second_server_follows_changes_and_rollbacks_within_the_bound(
    pg_stack: Stack, tmp_path: Path
) -> None:
    """A real ``backplane serve`` next to the test's application: another process entirely
    (PostgreSQL: several processes writing one SQLite file is not a supported deployment)."""
    stack = pg_stack
    with serving({**TEST_PASSWORD_ENV, **stack.env}, tmp_path / "serve.log") as server:
        remote = httpx.Client(base_url=server.base, headers=stack.a.headers, timeout=10)

        def served(key: str | None = None) -> str:
            body = dict(INFER, parameters={"routing_key": key}) if key else INFER
            answer = remote.post("/v2/models/scorer/infer", json=body)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["model_version"])

        def until(version: str, since: float) -> None:
            while served() != version:
                assert time.monotonic() - since <= BOUND_S + SLACK_S, f"still not {version}"
                time.sleep(0.05)

        assert stack.put("production", version="1").status_code == 200
        time.sleep(BOUND_S)
        assert served() == "1"
        assert stack.put("production", version="2").status_code == 200
        until("2", time.monotonic())
        rolled = stack.call(stack.a, "POST", "/api/models/scorer/aliases/production/rollback")
        assert rolled.status_code == 200, rolled.text
        until("1", time.monotonic())
        split = stack.put("production", version="1", split_version="2", split_percent=10)
        assert split.status_code == 200
        time.sleep(BOUND_S)
        keys = [f"user-{i}" for i in range(30)]
        assert {k: served(k) for k in keys} == {k: stack.served(stack.one, key=k) for k in keys}
