"""Shared by the files tests: a live ``backplane serve`` with two tenants, and reading what the
store holds on disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from backplane.loading import load_plugins
from tests.cli import Server, serving
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import TEST_PASSWORD_ENV, Seeded, seed_tenant


@dataclass(frozen=True)
class LiveFiles:
    server: Server
    a: Seeded
    b: Seeded
    data_dir: Path

    def upload(self, data: bytes, name: str = "file.bin", tenant: Seeded | None = None) -> dict:
        answer = httpx.post(
            f"{self.server.base}/api/files",
            params={"name": name},
            content=data,
            headers=(tenant or self.a).headers,
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def signed_url(self, file_id: str, tenant: Seeded | None = None) -> str:
        answer = httpx.post(
            f"{self.server.base}/api/files/{file_id}/signed-url",
            headers=(tenant or self.a).headers,
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return f"{self.server.base}{answer.json()['url']}"


@contextmanager
def live_files(root: Path, environ: dict[str, str] | None = None) -> Iterator[LiveFiles]:
    """A migrated database with tenants ``acme`` (a) and ``globex`` (b), served by a real
    ``backplane serve`` on 127.0.0.1."""
    data_dir = root / "var"
    env = {"BACKPLANE_DATA_DIR": str(data_dir), **TEST_PASSWORD_ENV, **(environ or {})}
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    with serving(env, root / "serve.log") as server:
        yield LiveFiles(server, a, b, data_dir)


def stored_objects(data_dir: Path) -> list[Path]:
    """Every file under the local store's root (temporary ones included)."""
    root = data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
