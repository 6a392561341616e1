"""Inference runtimes and storage backends come from hooks, and the kernel uses what plugins
register: kitchen_sink's ``kitchen_sink_echo`` runtime answers V2 requests for a model whose file
onnxruntime could not even parse; uploads run on the runtime ``inference.runtime`` names; with
``storage.backend = "kitchen_sink_memory"`` uploaded files live in the plugin's memory store,
are served from it and swept from it by the retention task. Unknown names stop start-up (or
skip the plugin shipping the model) with a message naming the setting.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bp_sample_kitchen_sink import runtime as echo
from bp_sample_kitchen_sink.storage import OBJECTS
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import InferenceModel, InferenceRuntime, ModelRef, hookimpl
from backplane.app import create_app
from backplane.db.engine import Database
from backplane.inference.runtime import UnknownInferenceRuntimeError
from backplane.inference.storage import UnknownStorageBackendError
from backplane.loading import load_plugins
from backplane.models import resource
from backplane.plugins import PluginLoadError, PluginSet
from backplane.retention import prune_history
from tests.app_helpers import kernel_on
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import Seeded, seed_tenant

IRIS = resource("iris_classifier.onnx").read_bytes()
ECHO = "/v2/models/kitchen_sink_echo"


def echo_request(x: list[list[float]], label: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "shape": [len(x), 2], "datatype": "FP32", "data": x},
            {"name": "label", "shape": [len(label)], "datatype": "INT64", "data": label},
        ],
        **extra,
    }


def outputs(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def iris_request() -> dict[str, Any]:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    return {"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": rows}]}


def upload(client: TestClient[Litestar], who: Seeded, name: str, data: bytes) -> Any:
    return client.post(
        "/api/models",
        headers=who.headers,
        files={"file": ("model.onnx", data, "application/octet-stream")},
        data={"name": name},
    )


# -- a plugin's runtime answers V2 requests ------------------------------------------------------


def test_a_plugin_runtime_serves_its_shipped_model(authed: TestClient[Litestar]) -> None:
    metadata = authed.get(ECHO)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json() == {
        "name": "kitchen_sink_echo",
        "versions": ["1"],
        "platform": "kitchen_sink_echo",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
        "outputs": [
            {"name": "x_echo", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "label_echo", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert ("kitchen_sink_echo", "1") in echo.LOADED  # the plugin's runtime loaded the file

    answer = outputs(
        authed.post(f"{ECHO}/infer", json=echo_request([[1.5, -2], [0.25, 4]], [7, 9]))
    )
    assert answer["x_echo"] == {
        "name": "x_echo", "datatype": "FP32", "shape": [2, 2], "data": [1.5, -2.0, 0.25, 4.0]
    }  # fmt: skip
    assert answer["label_echo"] == {
        "name": "label_echo", "datatype": "INT64", "shape": [2], "data": [7, 9]
    }  # fmt: skip

    one = authed.post(
        f"{ECHO}/infer", json=echo_request([[3, 4]], [5], outputs=[{"name": "label_echo"}])
    )
    assert list(outputs(one)) == ["label_echo"]
    wrong = authed.post(f"{ECHO}/infer", json=echo_request([[1, 2, 3]], [1]))
    assert wrong.status_code == 400  # checked against the signature the runtime reported
    assert "shape" in wrong.json()["error"]

    listed = {m["name"]: m for m in authed.get("/api/models").json()}
    assert listed["kitchen_sink_echo"]["source"] == "plugin"
    assert authed.get("/v2/models/iris_classifier").json()["platform"] == "onnxruntime_onnx"


def test_concurrent_requests_to_a_plugin_runtime_are_batched_each_getting_its_rows(
    authed: TestClient[Litestar],
) -> None:
    """kitchen_sink_echo asks for batches of up to 4 (waiting 20 ms for more): requests sent
    together share a run of the plugin's session, and each gets exactly its own rows back."""
    senders = 4
    answers: dict[int, Any] = {}

    def send(i: int, start: threading.Barrier) -> None:
        start.wait()
        answers[i] = authed.post(f"{ECHO}/infer", json=echo_request([[i, -i]], [i]))

    batched = False
    for _ in range(10):  # until one wave shares a run (thread scheduling decides)
        runs_before = len(echo.RUNS)
        start = threading.Barrier(senders)
        threads = [threading.Thread(target=send, args=(i, start)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i in range(senders):
            got = outputs(answers[i])
            assert got["x_echo"]["data"] == [float(i), float(-i)]
            assert got["label_echo"]["data"] == [i]
        if max(echo.RUNS[runs_before:]) > 1:
            batched = True
            break
    assert batched, f"no run of the echo runtime took more than one row: {echo.RUNS}"


class SpyRuntime:
    """Registered as part of kitchen_sink: onnxruntime itself, remembering what it loaded."""

    def __init__(self) -> None:
        self.loaded: list[ModelRef] = []

    @hookimpl
    def register_inference_runtimes(self, register: Any) -> None:
        register(InferenceRuntime(name="spy", load=self.load))

    def load(self, data: bytes, model: ModelRef) -> Any:
        import onnxruntime

        self.loaded.append(model)
        return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_uploads_run_on_the_runtime_inference_runtime_names(data_dir: Path) -> None:
    settings = make_settings(
        data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink", "BACKPLANE_INFERENCE__RUNTIME": "spy"}
    )
    plugins = load_plugins(settings)
    spy = SpyRuntime()
    plugins.manager.register(spy, name="kitchen_sink.spy")
    migrate(plugins)
    owner = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        created = upload(client, owner, "flowers", IRIS)
        assert created.status_code == 201, created.text
        served = client.post("/v2/models/flowers/infer", headers=owner.headers, json=iris_request())
        assert outputs(served)["label"]["data"] == [0, 2]
        shipped = client.post(
            "/v2/models/iris_classifier/infer", headers=owner.headers, json=iris_request()
        )
        assert outputs(shipped)["label"]["data"] == [0, 2]
    # the upload went through the spy; the shipped model through its own runtime (onnxruntime)
    assert [(m.name, m.source, m.key) for m in spy.loaded] == [
        ("flowers", "upload", created.json()["sha256"])
    ]


# -- unknown runtimes fail clearly at start ------------------------------------------------------


def test_an_unknown_upload_runtime_stops_start_up_naming_the_variable(data_dir: Path) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_INFERENCE__RUNTIME": "onnx"})
    with pytest.raises(UnknownInferenceRuntimeError) as info:
        create_app(settings)
    assert str(info.value) == (
        "BACKPLANE_INFERENCE__RUNTIME: no inference runtime 'onnx' "
        "(registered: kitchen_sink_echo, onnxruntime)"
    )


def test_an_unknown_upload_runtime_in_the_file_names_the_file_key(data_dir: Path) -> None:
    config = data_dir.parent / "backplane.toml"
    config.write_text('[inference]\nruntime = "onnx"\n')
    settings = make_settings(data_dir, {"BACKPLANE_CONFIG": str(config)})
    with pytest.raises(UnknownInferenceRuntimeError, match=f"^{config}: inference.runtime: "):
        create_app(settings)


class GhostModel:
    """A shipped model naming a runtime nobody registered."""

    @hookimpl
    def register_inference_models(self, register: Any) -> None:
        register(InferenceModel(name="ghost", version="1", path=Path("ghost.bin"), runtime="tpu"))


GHOST_REASON = (
    "register_inference_models raised LookupError: model 'ghost' version '1' names inference "
    "runtime 'tpu', which no plugin registered (registered: kitchen_sink_echo, onnxruntime)"
)


def test_a_plugin_shipping_a_model_for_an_unknown_runtime_is_skipped_with_the_reason(
    data_dir: Path,
) -> None:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"}))
    plugins.manager.register(GhostModel(), name="kitchen_sink.ghost")
    migrate(plugins)
    owner = seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        ready = {p["name"]: p for p in client.get("/health/ready").json()["plugins"]}
        assert ready["kitchen_sink"]["status"] == "skipped"
        assert ready["kitchen_sink"]["reason"] == GHOST_REASON
        assert client.get(ECHO, headers=owner.headers).status_code == 404
        assert client.get("/v2/models/iris_classifier", headers=owner.headers).status_code == 200


@pytest.mark.parametrize("where", ["strict", "kernel"])
def test_a_model_for_an_unknown_runtime_stops_start_up_in_strict_mode_or_the_kernel(
    data_dir: Path, where: str
) -> None:
    strict = {"BACKPLANE_STRICT_PLUGINS": "1"} if where == "strict" else {}
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink", **strict}))
    owner = "kitchen_sink" if where == "strict" else "core"
    plugins.manager.register(GhostModel(), name=f"{owner}.ghost")
    with pytest.raises(PluginLoadError) as info:
        create_app(plugins.settings, plugins=plugins)
    assert str(info.value) == f"plugin {owner!r}: {GHOST_REASON}"


# -- storage backends --------------------------------------------------------------------------


@pytest.fixture
def memory_stored(data_dir: Path, db_env: dict[str, str]) -> Iterator[PluginSet]:
    """Kitchen_sink's memory store as ``storage.backend``, on SQLite and PostgreSQL, migrated."""
    OBJECTS.clear()
    env = {**db_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    plugins = load_plugins(
        make_settings(data_dir, {**env, "BACKPLANE_STORAGE__BACKEND": "kitchen_sink_memory"})
    )
    migrate(plugins)
    yield plugins
    OBJECTS.clear()


def files_under(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "models").rglob("*") if p.is_file()]


def test_uploads_are_stored_by_the_configured_backend_and_served_from_it(
    memory_stored: PluginSet, data_dir: Path
) -> None:
    owner = seed_tenant(memory_stored, "acme")
    with TestClient(create_app(memory_stored.settings, plugins=memory_stored)) as client:
        created = upload(client, owner, "flowers", IRIS)
        assert created.status_code == 201, created.text
        sha256 = created.json()["sha256"]
        assert {sha256: IRIS} == OBJECTS  # in the plugin's store ...
        assert files_under(data_dir) == []  # ... and not in the data directory
        served = client.post("/v2/models/flowers/infer", headers=owner.headers, json=iris_request())
        assert outputs(served)["label"]["data"] == [0, 2]


async def test_retention_sweeps_the_configured_store(memory_stored: PluginSet) -> None:
    """The hourly task deletes unreferenced files from the store ``storage.backend`` names (an
    object put with no time is past any grace period)."""
    owner = seed_tenant(memory_stored, "acme")
    with TestClient(create_app(memory_stored.settings, plugins=memory_stored)) as client:
        kept = upload(client, owner, "flowers", IRIS).json()["sha256"]
    OBJECTS["0" * 64] = b"a file no version refers to"

    database = Database(memory_stored.settings)

    @contextlib.asynccontextmanager
    async def maintenance(reason: str) -> AsyncIterator[AsyncSession]:
        async with database.maintenance(reason) as session, session.begin():
            yield session

    try:
        async with (
            database.sessions() as session,
            kernel_on(memory_stored, session, maintenance) as kernel,
        ):
            await prune_history(kernel)
    finally:
        await database.dispose()
    assert list(OBJECTS) == [kept]


@pytest.mark.parametrize("source", ["environment", "file"])
def test_an_unknown_storage_backend_stops_start_up_naming_the_setting(
    data_dir: Path, source: str
) -> None:
    if source == "environment":
        env, where = {"BACKPLANE_STORAGE__BACKEND": "s3"}, "BACKPLANE_STORAGE__BACKEND"
    else:
        config = data_dir.parent / "backplane.toml"
        config.write_text('[storage]\nbackend = "s3"\n')
        env, where = {"BACKPLANE_CONFIG": str(config)}, f"{config}: storage.backend"
    with pytest.raises(UnknownStorageBackendError) as info:
        create_app(make_settings(data_dir, env))
    assert str(info.value) == (
        f"{where}: no storage backend 's3' (registered: kitchen_sink_memory, local)"
    )
