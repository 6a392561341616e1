"""Issue 19, acceptance 6: a tenant exported, then deleted, on SQLite and real PostgreSQL.

Data is made through the API in every installed plugin (the kernel and kitchen_sink) for two
tenants. ``backplane tenants export`` writes an archive holding every row (its count per table
equals the database's before the deletion) and the tenant's model files; ``backplane tenants
delete`` then leaves no row naming the tenant in any table of the metadata and no file only it
used, while the other tenant keeps every row and the file both used.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.privacy_helpers import (
    DIABETES,
    IRIS,
    Stack,
    file_of,
    populate,
    stack_on,
    tenant_counts,
)

OTHER_MODEL = (
    (Path(__file__).parent.parent / "sample_plugins" / "kitchen_sink")
    .joinpath("bp_sample_kitchen_sink", "shipped_models", "double.onnx")
    .read_bytes()
)


@pytest.fixture
def stack(data_dir: Path, db_env: dict[str, str]) -> Iterator[Stack]:
    with stack_on(data_dir, db_env) as made:
        populate(made, made.a, IRIS)
        populate(made, made.b, OTHER_MODEL)
        yield made


def read_archive(path: Path) -> tuple[dict[str, object], dict[str, list[dict[str, object]]]]:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        rows = {}
        for name, table in manifest["tables"].items():
            data = archive.read(table["entry"])
            assert hashlib.sha256(data).hexdigest() == table["sha256"]
            rows[name] = [json.loads(line) for line in data.splitlines()]
            assert len(rows[name]) == table["rows"]
        for entry, file in manifest["files"].items():
            assert hashlib.sha256(archive.read(entry)).hexdigest() == file["sha256"]
    return manifest, rows


def without_scheduled_tasks(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` but the task outbox's: the running stack's scheduler enqueues periodic tasks
    of the tenant at any minute, so the outbox grows between two counts of the test."""
    return {table: rows for table, rows in counts.items() if table != "backplane_task_outbox"}


def test_export_then_delete_leaves_nothing_of_the_tenant(stack: Stack, tmp_path: Path) -> None:
    before_a = tenant_counts(stack.plugins, stack.a.tenant_id)
    before_b = tenant_counts(stack.plugins, stack.b.tenant_id)
    filled = {name for name, rows in before_a.items() if rows}
    # Data in every installed plugin, and in each kernel concern.
    for table in (
        "kitchen_sink_notes",
        "kitchen_sink_task_log",
        "backplane_memberships",
        "backplane_api_keys",
        "backplane_usage_events",
        "backplane_subscriptions",
        "backplane_webhook_endpoints",
        "backplane_webhook_events",
        "backplane_model_versions",
        "backplane_tenant_plugins",
        "backplane_refresh_tokens",
        "backplane_task_outbox",
        "backplane_files",
        "backplane_file_usage",
        "backplane_audit_events",
    ):
        assert table in filled, (table, before_a)
    objects = stack.data_dir / "files" / str(stack.a.tenant_id)
    assert len(list(objects.iterdir())) == 1

    out = tmp_path / "acme.zip"
    exported = run_cli("tenants", "export", "acme", "--out", str(out), env=stack.env)
    assert exported.returncode == 0, exported.stderr
    manifest, rows = read_archive(out)
    assert manifest["missing"] == {}
    for table, count in without_scheduled_tasks(before_a).items():
        assert len(rows.get(table, [])) == count, table
    assert all(row["tenant_id"] == str(stack.a.tenant_id) for row in rows["kitchen_sink_notes"])
    # No secret leaves: hashes and sealed secrets are not exported.
    assert "digest" not in rows["backplane_api_keys"][0]
    assert "password_hash" not in rows["backplane_users"][0]
    assert "token_hash" not in rows["backplane_refresh_tokens"][0]
    assert "secret_sealed" not in rows["backplane_webhook_endpoints"][0]
    with zipfile.ZipFile(out) as archive:
        assert archive.read("core/files/models/own/1.onnx") == IRIS
        assert archive.read("core/files/models/shared/1.onnx") == DIABETES
        (brief,) = rows["backplane_files"]
        assert archive.read(f"core/files/files/{brief['id']}/brief.txt") == file_of(stack.a)

    refused = run_cli("tenants", "delete", "acme", env=stack.env)
    assert refused.returncode == 1
    assert "stdin is not a terminal, so pass --yes" in refused.stderr
    # The export itself is on the tenant's audit trail; nothing else changed.
    after_export = {**before_a, "backplane_audit_events": before_a["backplane_audit_events"] + 1}
    now = tenant_counts(stack.plugins, stack.a.tenant_id)
    assert without_scheduled_tasks(now) == without_scheduled_tasks(after_export)

    deleted = run_cli("tenants", "delete", "acme", "--yes", env=stack.env)
    assert deleted.returncode == 0, deleted.stderr
    assert "warning" not in deleted.stderr
    after_a = tenant_counts(stack.plugins, stack.a.tenant_id)
    assert after_a == dict.fromkeys(before_a, 0)
    kept_b = tenant_counts(stack.plugins, stack.b.tenant_id)
    assert without_scheduled_tasks(kept_b) == without_scheduled_tasks(before_b)
    # globex's outbox only grew (its periodic tasks, enqueued at any minute): none went with acme
    assert kept_b["backplane_task_outbox"] >= before_b["backplane_task_outbox"]
    assert not stack.model_file(IRIS).exists()  # only acme used it
    assert stack.model_file(DIABETES).exists()  # globex's version still does
    assert stack.model_file(OTHER_MODEL).exists()
    assert not objects.exists() or not list(objects.iterdir())  # acme's file objects are gone
    assert list((stack.data_dir / "files" / str(stack.b.tenant_id)).iterdir())

    # The other tenant still works; the deleted one's credentials do not.
    assert stack.call(stack.b, "GET", "/api/kitchen_sink/notes/").status_code == 200
    listed = run_cli("tenants", "list", "--json", env=stack.env)
    assert [t["slug"] for t in json.loads(listed.stdout)] == ["globex"]


def test_delete_asks_for_the_slug_on_a_terminal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backplane.cli.tenants._interactive", lambda: True)
    wrong = run_cli("tenants", "delete", "acme", env=stack.env, stdin="acmee\n")
    assert wrong.returncode == 1
    assert "not confirmed: nothing was deleted" in wrong.stderr
    assert tenant_counts(stack.plugins, stack.a.tenant_id)["kitchen_sink_notes"] == 3
    right = run_cli("tenants", "delete", "acme", env=stack.env, stdin="acme\n")
    assert right.returncode == 0, right.stderr
    assert tenant_counts(stack.plugins, stack.a.tenant_id)["kitchen_sink_notes"] == 0


def test_unknown_tenant_is_a_clear_error(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "x.zip"
    exported = run_cli("tenants", "export", "nope", "--out", str(out), env=stack.env)
    assert exported.returncode == 1
    assert "no tenant nope" in exported.stderr
    assert not out.exists()
    deleted = run_cli("tenants", "delete", "nope", "--yes", env=stack.env)
    assert deleted.returncode == 1
    assert "no tenant nope" in deleted.stderr
