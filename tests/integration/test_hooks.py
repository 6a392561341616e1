"""The plugin contract is real: every hookspec is documented, tested, and called by the kernel.

As datasette does, a test fails when a hookspec has no docstring or no ``test_hook_<name>``
test; and a spy over the kitchen_sink sample (which implements every hook) fails when the
kernel never calls one through a start, a request, a demo seed, a tenant and a plugin switch,
a command listing, a task, an invoice and readiness. Each ``test_hook_<name>`` below shows the
kernel *used* what the plugin gave, through behaviour a user sees.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane import hookspecs
from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.testing import run_in_tenant
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import Seeded, seed_tenant

TESTS = Path(__file__).resolve().parents[1]


def hookspec_names() -> list[str]:
    return sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "backplane_spec"))


def test_every_hookspec_has_a_docstring() -> None:
    undocumented = [n for n in hookspec_names() if not inspect.getdoc(getattr(hookspecs, n))]
    assert not undocumented


def test_every_hookspec_has_a_test() -> None:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    untested = [n for n in hookspec_names() if f"test_hook_{n}" not in names]
    assert not untested, f"hookspecs without a test_hook_<name> test: {untested}"


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every kitchen_sink hook implementation, wrapped to record that the kernel called it
    (functools.wraps keeps pluggy's marker and the implementation's signature)."""
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    called: set[str] = set()

    def spy(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            called.add(name)
            return function(*args, **kwargs)

        return recorded

    for name in hookspec_names():
        monkeypatch.setattr(kitchen_sink, name, spy(name, getattr(kitchen_sink, name)))
    return called


def test_the_kernel_calls_every_hookspec(data_dir: Path, spied: set[str]) -> None:
    from backplane.demo import seed_demo_data
    from backplane.kernel import Rails

    plugins = load_plugins(make_settings(data_dir))
    migrate(plugins)
    Rails.build(plugins.settings, plugins)  # what a worker or a command builds
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        import asyncio

        asyncio.run(seed_demo_data(plugins))
        tenant = seed_tenant(plugins, "acme")
        client.get("/health/ready")
        switched = client.put(
            "/api/tenant/plugins/kitchen_sink", json={"enabled": True}, headers=tenant.headers
        )
        assert switched.status_code == 200
        noted = client.post("/api/kitchen_sink/notes", json={"body": "x"}, headers=tenant.headers)
        assert noted.status_code == 201  # emits kitchen_sink.note_created
        from tests.integration.test_model_exposure import IRIS, ROW

        async def expose(kernel: Any) -> None:
            report = await kernel.models.check_artifact(IRIS)
            await kernel.models.expose_artifact("served_iris", report, source="kitchen_sink")

        run_in_tenant(client, tenant.slug, expose, plugin="kitchen_sink")
        served = client.post(  # model_loading
            "/v2/models/served_iris/infer", json={"inputs": [ROW]}, headers=tenant.headers
        )
        assert served.status_code == 200, served.text
        for right in ("export", "erase"):  # export_tenant_data, erase_subject
            body = {"email": "someone@example.org"}
            answer = client.post(f"/api/privacy/{right}", json=body, headers=tenant.headers)
            assert answer.status_code == 200, answer.text
        from backplane.testing import close_invoice

        close_invoice(plugins, tenant.slug)  # invoice_closing
    run_cli("--help", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    deleted = run_cli(
        "tenants", "delete", "acme", "--yes", env={"BACKPLANE_DATA_DIR": str(data_dir)}
    )
    assert deleted.returncode == 0, deleted.stderr  # tenant_deleting
    assert set(hookspec_names()) - spied == set()


# -- one test a hook: the kernel used what the plugin gave ----------------------------------------


def test_hook_register_routes(authed: TestClient[Litestar]) -> None:
    assert authed.get("/api/kitchen_sink/greeting").json() == {"greeting": "hello"}
    schema = authed.get("/schema/openapi.json").json()
    assert schema["paths"]["/api/kitchen_sink/greeting"]["get"]["tags"] == ["kitchen_sink"]


def test_hook_register_migrations(authed: TestClient[Litestar]) -> None:
    created = authed.post("/api/kitchen_sink/notes", json={"body": "stored"})
    assert created.status_code == 201, created.text
    assert [n["body"] for n in authed.get("/api/kitchen_sink/notes").json()] == ["stored"]


def test_hook_register_meters(authed: TestClient[Litestar]) -> None:
    authed.post("/api/kitchen_sink/notes", json={"body": "counted"})
    usage = authed.get("/api/billing/usage").json()
    meters = {m["meter"]: m for m in usage["meters"]}
    assert meters["kitchen_sink.notes"]["value"] == 1


def test_hook_register_permissions(authed: TestClient[Litestar]) -> None:
    assert "kitchen_sink.notes.write" in authed.get("/api/me").json()["permissions"]


def test_hook_register_trainers(authed: TestClient[Litestar]) -> None:
    """The kernel runs the plugin's trainer for its model (the run itself:
    tests/integration/test_training.py)."""
    started = authed.post("/api/models/note_score/train")
    assert started.status_code == 202, started.text
    assert started.json()["trainer"] == "kitchen_sink.notes"
    assert authed.post("/api/models/no_trainer_for_this/train").status_code == 404


def test_hook_register_inference_models(authed: TestClient[Litestar]) -> None:
    metadata = authed.get("/v2/models/kitchen_sink_double")
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["name"] == "kitchen_sink_double"


def test_hook_register_commands(data_dir: Path) -> None:
    result = run_cli("kitchen-sink-hello", "ada", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.stdout == "hello, ada, from kitchen_sink\n"


def test_hook_startup(app: Litestar) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.EVENTS.clear()
    with TestClient(app):
        assert [event for event, _ in kitchen_sink.EVENTS] == ["startup"]
        assert kitchen_sink.EVENTS[0][1].plugin == "kitchen_sink"


def test_hook_shutdown(app: Litestar) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    with TestClient(app):
        kitchen_sink.EVENTS.clear()
    assert [event for event, _ in kitchen_sink.EVENTS] == ["shutdown"]


def test_hook_check_health(client: TestClient[Litestar]) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.HEALTH_PROBLEM.append("the sink is blocked")
    try:
        ready = client.get("/health/ready").json()
    finally:
        kitchen_sink.HEALTH_PROBLEM.clear()
    assert ready["status"] == "degraded"
    sink = next(p for p in ready["plugins"] if p["name"] == "kitchen_sink")
    assert sink["reason"] == "the sink is blocked"


def test_hook_tenant_created(client: TestClient[Litestar], migrated: Any) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.EVENTS.clear()
    made = seed_tenant(migrated, "initech")
    [(event, (kernel, tenant))] = kitchen_sink.EVENTS
    assert (event, tenant.id) == ("tenant_created", made.tenant_id)
    assert kernel.tenant_id == made.tenant_id


def test_hook_plugin_enabled(authed: TestClient[Litestar], tenant_a: Seeded) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    authed.put("/api/tenant/plugins/kitchen_sink", json={"enabled": False})
    kitchen_sink.EVENTS.clear()
    authed.put("/api/tenant/plugins/kitchen_sink", json={"enabled": True})
    [(event, (kernel, tenant, name))] = kitchen_sink.EVENTS
    assert (event, tenant.id, name) == ("plugin_enabled", tenant_a.tenant_id, "kitchen_sink")
    assert kernel.tenant_id == tenant_a.tenant_id


def test_hook_seed_demo_data(data_dir: Path, migrated: Any) -> None:
    import asyncio

    from backplane.demo import seed_demo_data

    reports = asyncio.run(seed_demo_data(migrated))
    assert reports is not None
    with TestClient(create_app(migrated.settings, plugins=migrated)) as client:
        key = dict(reports)["core"]["api_key"]
        notes = client.get("/api/kitchen_sink/notes", headers={"Authorization": f"Bearer {key}"})
    assert [n["body"] for n in notes.json()] == ["demo note"]


def test_hook_register_auth_backends(data_dir: Path, migrated: Any) -> None:
    env = {
        "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TOKEN": "open sesame",
        "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TENANT": "acme",
    }
    plugins = load_plugins(make_settings(data_dir, env))
    seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        me = client.get("/api/me", headers={"X-Kitchen-Sink-Token": "open sesame"})
    assert me.status_code == 200, me.text
    assert me.json()["authenticated_by"] == "kitchen_sink_header"


def test_hook_register_inference_runtimes(authed: TestClient[Litestar]) -> None:
    """kitchen_sink_echo is a JSON signature only the plugin's runtime can load; it echoes."""
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]},
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [7]},
        ]
    }
    answer = authed.post("/v2/models/kitchen_sink_echo/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs == {"x_echo": [1.5, 2.5], "label_echo": [7]}


def test_hook_register_storage_backends(data_dir: Path, migrated: Any) -> None:
    from bp_sample_kitchen_sink.storage import OBJECTS

    from backplane.models import resource

    settings = make_settings(data_dir, {"BACKPLANE_STORAGE__BACKEND": "kitchen_sink_memory"})
    plugins = load_plugins(settings)
    tenant = seed_tenant(plugins, "acme")
    OBJECTS.clear()
    with TestClient(create_app(settings, plugins=plugins)) as client:
        data = resource("iris_classifier.onnx").read_bytes()
        uploaded = client.post(
            "/api/models",
            data={"name": "iris-stored"},
            files={"file": ("m.onnx", data, "application/octet-stream")},
            headers=tenant.headers,
        )
    assert uploaded.status_code == 201, uploaded.text
    assert list(OBJECTS.values()) == [data]
    assert not (data_dir / "models").exists()


def test_hook_register_tasks(authed: TestClient[Litestar], migrated: Any) -> None:
    import asyncio

    from bp_sample_kitchen_sink.models import TaskLog
    from sqlalchemy import select

    from tests.db_helpers import admin_session
    from tests.waiting import wait_for

    enqueued = authed.post("/api/kitchen_sink/jobs", json={"label": "hooked"})
    assert enqueued.status_code == 201, enqueued.text

    async def labels() -> list[str]:
        async with admin_session(migrated.settings, "test reads task logs") as session:
            return list(await session.scalars(select(TaskLog.label)))

    wait_for(lambda: asyncio.run(labels()) == ["hooked"], message="the plugin's task to run")


def test_hook_register_billing_providers(data_dir: Path, migrated: Any) -> None:
    """With ``billing.provider`` naming the plugin's provider, closing a period hands the
    invoice to it: the reference the tenant sees is the one the provider returned."""
    import asyncio

    from tests.billing_helpers import paid_since_september

    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_BILLING__PROVIDER": "kitchen_sink_ledger",
    }
    settings = make_settings(data_dir, env)
    tenant = seed_tenant(migrated, "acme")

    asyncio.run(paid_since_september(settings, tenant.tenant_id))
    closed = run_cli("billing", "close-period", "--period", "2026-09", "--tenant", "acme", env=env)
    assert closed.returncode == 0, closed.stderr
    with TestClient(create_app(settings, plugins=load_plugins(settings))) as client:
        invoices = client.get("/api/billing/invoices", headers=tenant.headers).json()
    # The app's own hourly close may have invoiced the previous month too (by the same provider).
    [invoice] = [i for i in invoices if i["period_start"].startswith("2026-09")]
    assert invoice["provider_reference"] == f"kitchen-sink/{invoice['number']}"


def test_hook_register_services(authed: TestClient[Litestar], tenant_a: Seeded) -> None:
    """Another plugin's code calls the service by name, bound to the caller's tenant and seen
    as the offering plugin; switched off for the tenant, or not offered, there is none."""
    from backplane.testing import run_in_tenant

    authed.post("/api/kitchen_sink/notes", json={"body": "a service counts me"})
    authed.post("/api/kitchen_sink/notes", json={"body": "and not me"})

    async def call(kernel: Any) -> Any:
        found = await kernel.service("kitchen_sink.count_notes")
        missing = await kernel.service("kitchen_sink.no_such_service")
        return None if found is None else await found(containing="service"), missing

    assert run_in_tenant(authed, tenant_a.tenant_id, call, plugin="core") == (
        {"plugin": "kitchen_sink", "notes": 1},
        None,
    )
    authed.put("/api/tenant/plugins/kitchen_sink", json={"enabled": False})
    assert run_in_tenant(authed, tenant_a.tenant_id, call, plugin="core") == (None, None)


def test_hook_invoice_closing(authed: TestClient[Litestar], tenant_a: Seeded) -> None:
    """The plugin's own item becomes a line of the tenant's invoice (kind ``item``), priced on
    the tenant's usage in the period (``kernel.usage.window``), and counts in the total."""
    from backplane.testing import close_invoice

    for body in ("one", "two", "three"):
        assert authed.post("/api/kitchen_sink/notes", json={"body": body}).status_code == 201
    invoice = close_invoice(authed, tenant_a.slug)
    items = [
        (li.kind, li.meter, li.quantity, li.amount) for li in invoice.lines if li.kind == "item"
    ]
    assert items == [("item", "kitchen_sink.notes", "3", 6)]
    assert invoice.total == sum(li.amount for li in invoice.lines)
    shown = authed.get(f"/api/billing/invoices/{invoice.id}").json()
    assert [li["description"] for li in shown["lines"] if li["kind"] == "item"] == [
        "kitchen sink notes (USD)"
    ]


def test_hook_model_loading(client: TestClient[Litestar], tenant_a: Seeded) -> None:
    """The plugin that exposed a model is asked before it serves, and may refuse (409)."""
    from tests.integration.test_model_exposure import IRIS, ROW

    async def expose(kernel: Any) -> None:
        report = await kernel.models.check_artifact(IRIS)
        await kernel.models.expose_artifact("refused_iris", report, source="kitchen_sink")

    run_in_tenant(client, tenant_a.slug, expose, plugin="kitchen_sink")
    refused = client.post(
        "/v2/models/refused_iris/infer", json={"inputs": [ROW]}, headers=tenant_a.headers
    )
    assert refused.status_code == 409
    assert "the kitchen sink withdrew its licence" in refused.json()["error"]
