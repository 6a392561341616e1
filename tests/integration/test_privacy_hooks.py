"""The data-rights hooks, one test each (``test_hook_<name>``, as tests/integration/test_hooks.py
requires): the kernel used what kitchen_sink's implementation did."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane import hookimpl
from tests.cli import run_cli
from tests.identity_helpers import Seeded


def test_hook_export_tenant_data(
    authed: TestClient[Litestar], tenant_a: Seeded, tmp_path: Path, data_dir: Path
) -> None:
    authed.post("/api/kitchen_sink/notes", json={"body": "for the archive"})
    out = tmp_path / "a.zip"
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    exported = run_cli("tenants", "export", tenant_a.slug, "--out", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(out) as archive:
        rows = archive.read("kitchen_sink/kitchen_sink_notes.jsonl").splitlines()
    assert [json.loads(r)["body"] for r in rows] == ["for the archive"]


def test_hook_erase_subject(authed: TestClient[Litestar]) -> None:
    authed.post("/api/kitchen_sink/notes", json={"body": "ring jo@example.org"})
    erased = authed.post("/api/privacy/erase", json={"email": "jo@example.org"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["kitchen_sink"] == {"kitchen_sink_notes": 1}
    notes = authed.get("/api/kitchen_sink/notes").json()
    assert [n["body"] for n in notes] == ["ring [erased]"]
    exported = authed.post("/api/privacy/export", json={"email": "jo@example.org"})
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert archive.read("kitchen_sink/kitchen_sink_notes.jsonl") == b""


def test_hook_tenant_deleting(tenant_a: Seeded, data_dir: Path) -> None:
    from bp_sample_kitchen_sink.plugin import EVENTS

    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    deleted = run_cli("tenants", "delete", tenant_a.slug, "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    deleting = [args for name, args in EVENTS if name == "tenant_deleting"]
    assert deleting[-1][1].slug == tenant_a.slug
    assert deleting[-1][0].plugin == "kitchen_sink"  # its own kernel view
    assert ("tenant_deleted", tenant_a.slug) in EVENTS  # after the commit


def test_an_export_missing_a_plugins_rows_says_which_table(
    authed: TestClient[Litestar],
    tenant_a: Seeded,
    tmp_path: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bp_sample_kitchen_sink import plugin

    @hookimpl
    async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
        return None  # forgets kitchen_sink_notes

    monkeypatch.setattr(plugin, "export_tenant_data", export_tenant_data)
    authed.post("/api/kitchen_sink/notes", json={"body": "left out"})
    out = tmp_path / "a.zip"
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    exported = run_cli("tenants", "export", tenant_a.slug, "--out", str(out), env=env)
    assert exported.returncode == 1
    assert "exporting acme" in exported.stderr  # the progress bar's label
    assert "the export is incomplete" in exported.stderr
    assert "kitchen_sink_notes: the database holds 1 rows, the archive 0" in exported.stderr
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert list(manifest["missing"]) == ["kitchen_sink_notes"]
