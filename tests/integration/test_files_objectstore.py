"""``backplane-contrib-objectstore``: the files service on obstore's in-memory and local stores
(no S3 server here; the same code path serves S3, GCS and Azure), registered through
``register_storage_backends`` like any plugin's backend."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backplane_contrib_objectstore import ObjectFileStore
from litestar.testing import TestClient
from obstore.store import LocalStore, MemoryStore

from backplane import ObjectMissingError
from backplane.app import create_app
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.files_helpers import stored_objects
from tests.identity_helpers import seed_tenant


async def chunks(*parts: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if fail:
        raise RuntimeError("the client went away")


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectFileStore:
    return ObjectFileStore(MemoryStore() if request.param == "memory" else LocalStore(tmp_path))


async def test_write_read_ranges_size_list_delete(store: ObjectFileStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    parts = [data[i : i + 700_000] for i in range(0, len(data), 700_000)]
    assert await store.write("t1/a", chunks(*parts)) == len(data)
    assert await store.size("t1/a") == len(data)
    assert b"".join([c async for c in store.read("t1/a")]) == data
    assert b"".join([c async for c in store.read("t1/a", 10, 20)]) == data[10:20]
    assert b"".join([c async for c in store.read("t1/a", len(data) - 5)]) == data[-5:]
    assert b"".join([c async for c in store.read("t1/a", 5, 5)]) == b""
    await store.write("t2/b", chunks(b"other tenant"))
    assert [(i.key, i.size) async for i in store.list("t1/")] == [("t1/a", len(data))]
    assert {i.key async for i in store.list()} == {"t1/a", "t2/b"}
    await store.delete("t1/a")
    await store.delete("t1/a")  # a missing object is no error
    with pytest.raises(ObjectMissingError):
        await store.size("t1/a")
    with pytest.raises(ObjectMissingError):
        [c async for c in store.read("t1/a")]


async def test_a_failed_write_leaves_no_object(store: ObjectFileStore) -> None:
    with pytest.raises(RuntimeError, match="went away"):
        await store.write("t1/broken", chunks(b"x" * 1000, fail=True))
    assert [i.key async for i in store.list()] == []


def test_the_files_api_stores_in_the_object_store(data_dir: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    env = {
        "BACKPLANE_FILES__BACKEND": "objectstore",
        "BACKPLANE_PLUGIN__OBJECTSTORE__URL": f"file://{bucket}",
    }
    plugins = load_plugins(make_settings(data_dir, env))
    assert "objectstore" in plugins.loaded
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    data = os.urandom(200_000)
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        client.headers.update(tenant.headers)
        made = client.post(
            "/api/files", params={"name": "x.bin"}, content=iter([data[:5], data[5:]])
        )
        assert made.status_code == 201, made.text
        assert made.json()["sha256"] == hashlib.sha256(data).hexdigest()
        file_id = made.json()["id"]
        assert (bucket / str(tenant.tenant_id) / file_id).read_bytes() == data
        assert stored_objects(data_dir) == []  # nothing in the data directory's store
        part = client.get(f"/api/files/{file_id}/content", headers={"Range": "bytes=-1000"})
        assert (part.status_code, part.content) == (206, data[-1000:])
        assert client.delete(f"/api/files/{file_id}").status_code == 204


def test_an_unknown_files_backend_fails_at_start_with_the_names(data_dir: Path) -> None:
    from backplane.files.storage import UnknownFileBackendError

    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_FILES__BACKEND": "s4"}))
    with pytest.raises(UnknownFileBackendError, match=r"BACKPLANE_FILES__BACKEND.*'s4'.*local"):
        create_app(plugins.settings, plugins=plugins)
