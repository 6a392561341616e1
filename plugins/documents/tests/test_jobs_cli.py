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
