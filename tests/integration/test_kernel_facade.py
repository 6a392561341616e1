"""The kernel facade: what plugin code receives everywhere, and what it can never reach.

Issue 16, acceptance 2: no hook, handler, task or command of a plugin can reach the secret key,
an engine or ``app.state`` through what the kernel hands it. Each kind of plugin code in the
kitchen_sink sample records what it was given; a walk over the public surface of each
(attributes and properties not starting with ``_``, recursively, SQLAlchemy sessions excepted:
a session necessarily carries its own connection, which is the application role's and bound by
row-level security) finds none of them; the settings it sees carry no secret and lead to none.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.testing import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backplane import Kernel
from backplane.secret_key import secret_key
from backplane.settings import Settings
from tests.cli import run_cli
from tests.identity_helpers import Seeded

FORBIDDEN = (AsyncEngine, Engine, Litestar, State)


def reachable(root: Any, depth: int = 4) -> list[tuple[str, Any]]:
    """``(path, value)`` of everything on ``root``'s public surface, ``depth`` levels deep."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(value: Any, path: str, level: int) -> None:
        if id(value) in seen or level > depth:
            return
        seen.add(id(value))
        found.append((path, value))
        if isinstance(value, str | bytes | int | float | bool | type(None) | AsyncSession):
            return
        if isinstance(value, dict):
            for key, item in list(value.items()):
                walk(item, f"{path}[{key!r}]", level + 1)
            return
        if isinstance(value, list | tuple | set | frozenset):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", level + 1)
            return
        if inspect.isroutine(value) or inspect.ismodule(value) or inspect.isclass(value):
            return
        for name in dir(value):
            if name.startswith("_"):
                continue
            try:
                item = getattr(value, name)
            except Exception:  # noqa: BLE001 - a property may refuse (no tenant bound, say)
                continue
            walk(item, f"{path}.{name}", level + 1)

    walk(root, "kernel", 0)
    return found


def assert_no_secret_reachable(root: Any, secret: str) -> None:
    for path, value in reachable(root):
        assert not isinstance(value, FORBIDDEN), f"{path} is a {type(value).__name__}"
        assert not (isinstance(value, str) and secret in value), f"{path} holds the secret key"
        if isinstance(value, Settings):
            assert value.secret_key is None, f"{path}.secret_key is set"
            with pytest.raises(PermissionError):
                secret_key(value)


def test_no_plugin_code_can_reach_a_secret_an_engine_or_the_app(
    data_dir: Path, migrated: Any, tenant_a: Seeded
) -> None:
    """A start-up hook, a handler, a task and a command of the sample each record the kernel
    they were given; none leads to the secret key, an engine or the application."""
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    from backplane.app import create_app
    from tests.waiting import wait_for

    kitchen_sink.EVENTS.clear()
    with TestClient(create_app(migrated.settings, plugins=migrated)) as client:
        client.headers.update(tenant_a.headers)
        assert client.post("/api/kitchen_sink/double", json={"values": [1.5]}).status_code == 201
        assert client.post("/api/kitchen_sink/jobs", json={"label": "x"}).status_code == 201
        wait_for(
            lambda: any(kind == "task" for kind, _ in kitchen_sink.EVENTS),
            message="the sample's task to run",
        )
    result = run_cli("kitchen-sink-notes", "acme", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    kinds = {kind for kind, kernel in kitchen_sink.EVENTS if isinstance(kernel, Kernel)}
    assert {"startup", "handler", "task", "command", "shutdown"} <= kinds
    secret = secret_key(migrated.settings)
    for _kind, kernel in kitchen_sink.EVENTS:
        if isinstance(kernel, Kernel):
            assert kernel.plugin == "kitchen_sink"
            assert_no_secret_reachable(kernel, secret)


def test_kernel_models_runs_a_model_for_plugin_code_and_meters_it(
    authed: TestClient[Litestar],
) -> None:
    doubled = authed.post("/api/kitchen_sink/double", json={"values": [1.5, -2.0]})
    assert doubled.status_code == 201, doubled.text
    assert doubled.json() == [3.0, -4.0]
    meters = {m["meter"]: m for m in authed.get("/api/billing/usage").json()["meters"]}
    assert meters["inference.requests"]["value"] == 1
    assert meters["inference.rows"]["value"] == 2


def test_tasks_get_the_same_services_as_handlers(authed: TestClient[Litestar]) -> None:
    """A task meters usage and emits events like a handler, through its own kernel view (on
    the task runtime's database): the note it writes counts on the tenant's usage, and the
    event reaches the subscribers."""
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    from tests.waiting import wait_for

    kitchen_sink.EVENTS.clear()
    queued = authed.post("/api/kitchen_sink/jobs", json={"label": "from a task", "note": True})
    assert queued.status_code == 201, queued.text

    def notes() -> list[str]:
        return [n["body"] for n in authed.get("/api/kitchen_sink/notes").json()]

    wait_for(lambda: notes() == ["from a task"], message="the task to write its note")
    meters = {m["meter"]: m for m in authed.get("/api/billing/usage").json()["meters"]}
    assert meters["kitchen_sink.notes"]["value"] == 1
    heard = [e for name, (_k, e) in _pairs(kitchen_sink.EVENTS) if name == "event_emitted"]
    assert [e.type for e in heard] == ["kitchen_sink.note_created"]


def _pairs(events: list[tuple[str, Any]]) -> list[tuple[str, tuple[Any, Any]]]:
    return [(name, value) for name, value in events if isinstance(value, tuple)]
