"""``backplane documents generate``: a bulk job run by the operator, with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobs_helpers import JOBS, csv_rows, make_template
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import SeededTenant, invoke_cli, usage_of


def documents_cli(environ: dict[str, str], *args: str) -> Any:
    """The command as an operator's shell runs it, with exactly the test's settings."""
    return invoke_cli("documents", *args, environ=environ)


def test_generate_writes_the_documents_and_shows_progress(
    backplane_client: TestClient[Litestar],
    backplane_app: Any,
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
    tmp_path: Path,
) -> None:
    make_template(backplane_client, name="card")
    data = tmp_path / "people.csv"
    data.write_bytes(csv_rows(230, bad_every=100))
    out = tmp_path / "out"
    result = documents_cli(
        backplane_environ,
        "generate",
        "card",
        str(data),
        "--out",
        str(out),
        "--tenant",
        backplane_tenant.slug,
        "--name-field",
        "name",
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "generating card" in result.stderr  # the progress bar's label (no terminal: no bar)
    assert result.stdout.strip() == (
        f"228 documents in {out}, 2 rows failed (see {out / 'manifest.jsonl'})"
    )
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 229
    assert (out / "Person 3.html").read_bytes() == b"<h1>Person 3</h1><p>3.5 n3</p>"
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["row"] for line in lines if line["status"] == "failed"] == [100, 200]
    assert usage_of(backplane_app, backplane_tenant, "documents.generated") == 228
    [job] = backplane_client.get(JOBS).json()
    assert (job["source"], job["status"], job["progress"]["done"]) == ("cli", "succeeded", 228)


def test_generate_names_what_is_wrong(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
    tmp_path: Path,
) -> None:
    make_template(backplane_client, name="card")
    data = tmp_path / "people.txt"
    data.write_bytes(csv_rows(2))
    base = ["--out", str(tmp_path / "o"), "--tenant", backplane_tenant.slug]
    result = documents_cli(backplane_environ, "generate", "card", str(data), *base)
    assert result.exit_code == 1
    assert "format=csv or format=jsonl" in result.stderr
    result = documents_cli(
        backplane_environ, "generate", "nope", str(data), "--format", "csv", *base
    )
    assert result.exit_code == 1
    assert "no template named 'nope'" in result.stderr
    result = documents_cli(
        backplane_environ,
        "generate",
        "card",
        str(data),
        "--format",
        "csv",
        "--out",
        "x",
        "--tenant",
        "no-such-tenant",
    )
    assert result.exit_code == 1
    assert "no-such-tenant" in result.stderr


def test_chunks_after_the_first_are_rendered_ahead_and_come_out_the_same(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    """Each chunk renders the next one's rows while it stores and commits its own; the next
    chunk takes them (here: the CLI, whose chunks run one after another)."""
    from backplane_documents import jobs_run

    taken: list[bool] = []
    real = jobs_run.rendered_ahead

    async def spied(key: Any, outcomes: Any) -> Any:
        ready = await real(key, outcomes)
        taken.append(ready is not None)
        return ready

    monkeypatch.setattr(jobs_run, "rendered_ahead", spied)
    make_template(backplane_client, name="card")
    data = tmp_path / "people.csv"
    data.write_bytes(csv_rows(25, bad_every=7))
    out = tmp_path / "out"
    environ = {**backplane_environ, "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": "10"}
    args = ("generate", "card", str(data), "--out", str(out), "--tenant", backplane_tenant.slug)
    result = documents_cli(environ, *args, "--name-field", "name")
    assert result.exit_code == 0, result.output + result.stderr
    assert taken == [False, True, True]  # chunk 0 renders itself; 1 and 2 were rendered ahead
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["row"] for line in lines if line["status"] == "failed"] == [7, 14, 21]
    assert len([line for line in lines if line["status"] == "done"]) == 22
    assert (out / "Person 24.html").read_bytes() == b"<h1>Person 24</h1><p>24.5 n24</p>"
