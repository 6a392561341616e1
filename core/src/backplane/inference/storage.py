"""Where model files live: content-addressed, behind a small interface a deployment can replace.

Files are named by their sha256, so a version's bytes can never change under it, two tenants
uploading the same file store it once, and a read can be checked against its name. The local
store writes to a temporary file and renames it into place, so a crash never leaves a partial
artifact under a valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from backplane.plugins import PluginSet
from backplane.storage_backends import choose_storage_backend

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_SHA256_DIR = re.compile(r"^[0-9a-f]{2}\Z")


class ArtifactMissingError(LookupError):
    """No artifact with that hash is stored (or its bytes no longer match it)."""


class ArtifactStore(Protocol):
    """Model files by content hash."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotently) and return its sha256."""
        ...

    def get(self, sha256: str) -> bytes:
        """The stored bytes, verified against ``sha256``; :class:`ArtifactMissingError` if not."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def sweep(self, keep: set[str], older_than: float) -> int:
        """Delete artifacts not in ``keep`` last stored before ``older_than`` (a Unix time);
        how many were deleted."""
        ...


class UnknownStorageBackendError(LookupError):
    """``storage.backend`` names no backend registered through ``register_storage_backends``."""


def open_store(plugins: PluginSet) -> ArtifactStore:
    """The store ``storage.backend`` names, among every registered backend (a later plugin's
    backend of the same name replaces an earlier one's, the kernel's included)."""
    store: ArtifactStore = choose_storage_backend(
        plugins,
        setting="storage.backend",
        name=plugins.settings.storage.backend,
        opener=lambda backend: backend.open,
        missing=UnknownStorageBackendError,
    )
    return store


def local_store(data_dir: Path) -> LocalArtifactStore:
    """The data directory's model store (``<data dir>/models``)."""
    return LocalArtifactStore(data_dir / "models")


class LocalArtifactStore:
    """``<root>/<sha[:2]>/<sha>.onnx`` on the local filesystem (the data directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ArtifactMissingError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}.onnx"

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if path.exists():
            # Stored again: a sweep must count its age from now, or it could delete the file
            # of an old, unreferenced copy between this put and the new version's row.
            os.utime(path)
            return sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissingError(f"artifact {sha256} is not stored") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactMissingError(f"artifact {sha256} is corrupt (its hash changed)")
        return data

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def discard(self, sha256: str, older_than: float) -> bool:
        """Delete one artifact unless it was stored (again) since ``older_than`` (a Unix time):
        for the files of a deleted tenant, which an upload in flight may be storing anew."""
        path = self._path(sha256)
        try:
            if path.stat().st_mtime >= older_than:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def sweep(self, keep: set[str], older_than: float) -> int:
        """Unreferenced artifacts (and temporary files an interrupted upload left), by mtime.

        The grace period (``older_than``) covers an upload between storing its file and
        committing its row; a file is deleted only when both say it is unused."""
        deleted = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("??/*"):
            name = path.name
            stale_upload = name.startswith(".upload.")
            unreferenced = name.endswith(".onnx") and name[:-5] not in keep
            if not (stale_upload or unreferenced) or not _SHA256_DIR.match(path.parent.name):
                continue
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        return deleted
