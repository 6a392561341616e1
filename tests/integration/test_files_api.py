"""The files API on SQLite and PostgreSQL: streamed uploads and their limits, type detection,
checksums, listing, deletion, the ``files.bytes`` quota (two uploads at its edge at once),
tenant isolation, signed URLs and what the retention task sweeps."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.files.quota import FilesQuotaExceeded
from backplane.files.signing import sign
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.retention import prune
from backplane.testing import set_quota
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.files_helpers import stored_objects
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def upload(client: TestClient[Litestar], tenant: Seeded, data: bytes, name: str = "f.bin") -> dict:
    answer = client.post("/api/files", params={"name": name}, content=data, headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_an_upload_is_typed_by_its_bytes_and_checksummed(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    answer = dual_client.post(
        "/api/files",
        params={"name": "../../etc/holiday\x07.txt"},
        content=PNG,
        headers={**dual_tenant_a.headers, "Content-Type": "text/plain"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["content_type"] == "image/png"  # not the client's text/plain
    assert body["name"] == "holiday.txt"  # the last segment, no control characters
    assert body["size"] == len(PNG)
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert body["owner"] == "core"
    shown = dual_client.get(f"/api/files/{body['id']}", headers=dual_tenant_a.headers).json()
    assert shown == body
    text = upload(dual_client, dual_tenant_a, "plain words, ünïcode\n".encode(), "a.bin")
    assert text["content_type"] == "text/plain"
    binary = upload(dual_client, dual_tenant_a, b"\x00\x01\x02\xff" * 10)
    assert binary["content_type"] == "application/octet-stream"


def test_an_upload_streams_in_chunks_without_a_content_length(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    chunks = [os.urandom(64 * 1024) for _ in range(20)]
    answer = dual_client.post(
        "/api/files", content=iter(chunks), headers=dual_tenant_a.headers, params={"name": "x"}
    )
    assert answer.status_code == 201, answer.text
    whole = b"".join(chunks)
    assert answer.json()["sha256"] == hashlib.sha256(whole).hexdigest()
    got = dual_client.get(
        f"/api/files/{answer.json()['id']}/content", headers=dual_tenant_a.headers
    )
    assert got.content == whole


@pytest.fixture
def small_limit_client(data_dir: Path) -> Iterator[tuple[TestClient[Litestar], Seeded]]:
    """An app whose uploads may be at most 1,000 bytes (``files.max_upload_bytes``)."""
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_FILES__MAX_UPLOAD_BYTES": "1000"}))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        yield client, tenant


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_oversize_upload_is_413_and_leaves_nothing(
    small_limit_client: tuple[TestClient[Litestar], Seeded], declared: bool
) -> None:
    client, tenant = small_limit_client
    data = os.urandom(1001)
    body = data if declared else iter([data[:600], data[600:]])
    answer = client.post("/api/files", content=body, headers=tenant.headers)
    assert answer.status_code == 413
    assert "larger than the limit of 1000 bytes" in answer.json()["detail"]
    assert "files.max_upload_bytes" in answer.json()["detail"]
    assert stored_objects(rails(client.app).settings.data_dir) == []
    assert client.get("/api/files", headers=tenant.headers).json() == []
    assert upload(client, tenant, data[:1000])["size"] == 1000  # exactly the limit passes


def test_list_delete_and_the_quota_follow_each_other(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    set_quota(dual_client.app, dual_tenant_a, "files.bytes", 1500)
    headers = dual_tenant_a.headers
    first = upload(dual_client, dual_tenant_a, os.urandom(600), "one")
    second = upload(dual_client, dual_tenant_a, os.urandom(600), "two")
    listed = dual_client.get("/api/files", headers=headers).json()
    assert {f["name"] for f in listed} == {"one", "two"}  # same second: the order is by id
    page = dual_client.get("/api/files", params={"limit": 1}, headers=headers).json()
    rest = dual_client.get(
        "/api/files", params={"limit": 5, "after": page[0]["id"]}, headers=headers
    ).json()
    assert [f["id"] for f in page + rest] == [f["id"] for f in listed]
    refused = dual_client.post("/api/files", content=os.urandom(600), headers=headers)
    assert refused.status_code == 507
    assert refused.json()["meter"] == "files.bytes"
    assert refused.json()["used"] == 1200
    assert "nothing was stored" in refused.json()["detail"]
    assert len(stored_objects(rails(dual_client.app).settings.data_dir)) == 2
    assert dual_client.delete(f"/api/files/{first['id']}", headers=headers).status_code == 204
    assert dual_client.get(f"/api/files/{first['id']}", headers=headers).status_code == 404
    assert dual_client.delete(f"/api/files/{first['id']}", headers=headers).status_code == 404
    assert upload(dual_client, dual_tenant_a, os.urandom(600))["size"] == 600
    usage = dual_client.get("/api/billing/usage", headers=headers).json()
    gauge = next(m for m in usage["meters"] if m["meter"] == "files.bytes")
    assert (gauge["aggregation"], gauge["value"], gauge["limit"]) == ("latest", 1200, 1500)
    assert second["id"] in {f["id"] for f in dual_client.get("/api/files", headers=headers).json()}


def test_a_chunked_upload_past_the_quota_is_refused_after_streaming(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    set_quota(dual_client.app, dual_tenant_a, "files.bytes", 1000)
    answer = dual_client.post(
        "/api/files",
        content=iter([os.urandom(700), os.urandom(700)]),
        headers=dual_tenant_a.headers,
    )
    assert answer.status_code == 507
    assert stored_objects(rails(dual_client.app).settings.data_dir) == []


async def test_two_uploads_at_the_quota_edge_do_not_both_pass(
    dual_plugins: PluginSet, dual_tenant_a: Seeded
) -> None:
    """Both write their bytes, then race to commit: the row lock lets exactly one in."""
    from backplane.kernel import Rails

    set_quota(dual_plugins, dual_tenant_a, "files.bytes", 1000)
    built = Rails.build(dual_plugins.settings, dual_plugins)
    both_streaming = asyncio.Barrier(2)

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(300)
        await both_streaming.wait()
        yield os.urandom(300)

    async def save() -> str:
        try:
            async with built.kernel().tenant(dual_tenant_a.tenant_id) as kernel:
                await kernel.files.save(body(), name="race")
        except FilesQuotaExceeded:
            return "refused"
        return "stored"

    try:
        outcomes = await asyncio.wait_for(asyncio.gather(save(), save()), 60)
        async with built.kernel().tenant(dual_tenant_a.tenant_id) as kernel:
            listed = await kernel.files.list()
    finally:
        await built.close()
    assert sorted(outcomes) == ["refused", "stored"]
    assert len(listed) == 1
    assert len(stored_objects(dual_plugins.settings.data_dir)) == 1


def test_tenant_b_cannot_see_download_sign_or_delete_a_file_of_a(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded, dual_tenant_b: Seeded
) -> None:
    stored = upload(dual_client, dual_tenant_a, PNG)
    theirs = dual_tenant_b.headers
    for method, path in [
        ("GET", f"/api/files/{stored['id']}"),
        ("GET", f"/api/files/{stored['id']}/content"),
        ("HEAD", f"/api/files/{stored['id']}/content"),
        ("POST", f"/api/files/{stored['id']}/signed-url"),
        ("DELETE", f"/api/files/{stored['id']}"),
    ]:
        assert dual_client.request(method, path, headers=theirs).status_code == 404, path
    assert dual_client.get("/api/files", headers=theirs).json() == []
    # a file of B signed for B's tenant: the signature names B, so A's file id is not found
    mine = upload(dual_client, dual_tenant_b, b"b's own")
    url = dual_client.post(f"/api/files/{mine['id']}/signed-url", headers=theirs).json()["url"]
    swapped = url.replace(mine["id"], stored["id"])
    answer = dual_client.get(swapped)
    assert answer.status_code == 403
    assert "another file" in answer.json()["detail"]
    assert dual_client.get(f"/api/files/{stored['id']}", headers=dual_tenant_a.headers).is_success


def test_a_signed_url_works_without_authorization_until_it_expires(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    stored = upload(dual_client, dual_tenant_a, PNG)
    path = f"/api/files/{stored['id']}"
    made = dual_client.post(
        f"{path}/signed-url", json={"expires_in_s": 60}, headers=dual_tenant_a.headers
    )
    assert made.status_code == 201
    expires = datetime.fromisoformat(made.json()["expires_at"])
    assert timedelta(seconds=50) < expires - datetime.now(UTC) <= timedelta(seconds=61)
    answer = dual_client.get(made.json()["url"])
    assert (answer.status_code, answer.content) == (200, PNG)
    assert dual_client.get(f"{path}/content").status_code == 401  # the route itself needs auth
    too_long = dual_client.post(
        f"{path}/signed-url", json={"expires_in_s": 10**6}, headers=dual_tenant_a.headers
    )
    assert too_long.status_code == 400
    assert "files.signed_url_max_ttl_s" in too_long.json()["detail"]

    identity = rails(dual_client.app).identity.identity  # started with the app
    assert identity is not None
    old = sign(identity, dual_tenant_a.tenant_id, uuid.UUID(stored["id"]), int(time.time()) - 60)
    answer = dual_client.get(f"{path}/signed", params={"sig": old})
    assert answer.status_code == 403
    assert "expired" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        ("", "no valid signature"),
        ("not-a-jws", "malformed"),
        ("a" * 3000, "no valid signature"),
    ],
)
def test_a_bad_signature_is_403_with_a_message(
    client: TestClient[Litestar], tenant_a: Seeded, sig: str, message: str
) -> None:
    stored = upload(client, tenant_a, PNG)
    answer = client.get(f"/api/files/{stored['id']}/signed", params={"sig": sig})
    assert answer.status_code == 403
    assert message in answer.json()["detail"]


def test_a_forged_or_foreign_signature_is_refused(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    stored = upload(client, tenant_a, PNG)
    url = client.post(f"/api/files/{stored['id']}/signed-url", headers=tenant_a.headers).json()[
        "url"
    ]
    header, payload, signature = url.split("sig=", 1)[1].split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    answer = client.get(f"/api/files/{stored['id']}/signed", params={"sig": tampered})
    assert (answer.status_code, answer.json()["detail"]) == (
        403,
        "the signed URL's signature is not valid",
    )
    # an access token is signed by the same keyring but is not a file signature
    login = client.post(
        "/api/auth/login",
        json={"email": tenant_a.email, "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    answer = client.get(f"/api/files/{stored['id']}/signed", params={"sig": token})
    assert answer.status_code == 403
    assert "not a file signature" in answer.json()["detail"]


async def test_retention_sweeps_deleted_and_orphaned_objects(
    dual_plugins: PluginSet, dual_tenant_a: Seeded
) -> None:
    from backplane.kernel import Rails

    built = Rails.build(dual_plugins.settings, dual_plugins)
    data_dir = dual_plugins.settings.data_dir

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        yield data

    try:
        async with built.kernel().tenant(dual_tenant_a.tenant_id) as kernel:
            kept = await kernel.files.save(chunks(b"kept"), name="kept")
            gone = await kernel.files.save(chunks(b"gone"), name="gone")
            await kernel.files.delete(gone.id)
        orphan = data_dir / "files" / str(dual_tenant_a.tenant_id) / str(uuid.uuid4())
        orphan.write_bytes(b"an upload that never committed")
        young = orphan.with_name(".upload.0123456789abcdef")
        young.write_bytes(b"an upload in progress")
        old = time.time() - 7200
        os.utime(orphan, (old, old))
        assert len(stored_objects(data_dir)) == 4
        settings = dual_plugins.settings
        async with built.database.maintenance("test retention") as session, session.begin():
            early = await prune(session, settings, built.models.store, files=built.files)
        # the old orphan only: the deleted file and the upload in progress are recent
        assert (early["files"], early["file_objects"]) == (0, 1)
        assert {p.name for p in stored_objects(data_dir)} == {
            str(kept.id),
            str(gone.id),
            young.name,
        }
        later = datetime.now(UTC) + timedelta(seconds=settings.files.keep_deleted_s + 1)
        async with built.database.maintenance("test retention") as session, session.begin():
            counts = await prune(session, settings, built.models.store, later, files=built.files)
        assert (counts["files"], counts["file_objects"]) == (1, 1)
        assert {p.name for p in stored_objects(data_dir)} == {str(kept.id)}
        async with built.kernel().tenant(dual_tenant_a.tenant_id) as kernel:
            assert [f.id for f in await kernel.files.list()] == [kept.id]
            opened = await kernel.files.open(kept.id)
            assert b"".join([c async for c in opened.read()]) == b"kept"
    finally:
        await built.close()


def test_a_viewer_may_download_but_not_upload_or_delete(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    made = client.post(
        "/api/apikeys", json={"name": "viewer", "role": "viewer"}, headers=tenant_a.headers
    )
    assert made.status_code == 201, made.text
    viewer = {"Authorization": f"Bearer {made.json()['key']}"}
    stored = upload(client, tenant_a, PNG)
    refused = client.post("/api/files", content=b"x", headers=viewer)
    assert refused.status_code == 403
    assert "files.write" in refused.json()["detail"]
    assert client.delete(f"/api/files/{stored['id']}", headers=viewer).status_code == 403
    assert client.get(f"/api/files/{stored['id']}/content", headers=viewer).content == PNG
    assert client.post(f"/api/files/{stored['id']}/signed-url", headers=viewer).status_code == 201


def test_an_operator_caps_the_stored_bytes_with_the_quotas_command(data_dir: Path) -> None:
    from tests.cli import run_cli
    from tests.identity_helpers import TEST_PASSWORD_ENV

    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "", **TEST_PASSWORD_ENV}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    capped = run_cli("quotas", "set", "acme", "files.bytes", "1000", env=env)
    assert capped.returncode == 0, capped.stderr
    assert "files.bytes limited to 1000" in capped.stdout
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        assert upload(client, tenant, os.urandom(1000))["size"] == 1000
        full = client.post("/api/files", content=b"one byte too many", headers=tenant.headers)
        assert full.status_code == 507
        assert full.json()["limit"] == 1000
