"""A storage backend that keeps objects in this process's memory: the kernel's tests select it
(``storage.backend = "kitchen_sink_memory"``) to see that stored model files go through the
backend a plugin registered, not the data directory."""

from __future__ import annotations

import hashlib
import time
from typing import Any

OBJECTS: dict[str, bytes] = {}
"""Everything stored, by sha256 (tests inspect it)."""
STORED_AT: dict[str, float] = {}
"""When each object was last stored (the sweep's grace period covers uploads in flight)."""


class MemoryStore:
    """The ``ArtifactStore`` protocol over :data:`OBJECTS`."""

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        OBJECTS[sha256] = data
        STORED_AT[sha256] = time.time()
        return sha256

    def get(self, sha256: str) -> bytes:
        from backplane import ArtifactMissingError

        try:
            return OBJECTS[sha256]
        except KeyError:
            raise ArtifactMissingError(f"artifact {sha256} is not stored") from None

    def exists(self, sha256: str) -> bool:
        return sha256 in OBJECTS

    def discard(self, sha256: str, older_than: float) -> bool:
        if sha256 not in OBJECTS or STORED_AT.get(sha256, 0) >= older_than:
            return False
        del OBJECTS[sha256]
        return True

    def sweep(self, keep: set[str], older_than: float) -> int:
        gone = [sha for sha in OBJECTS if sha not in keep and STORED_AT.get(sha, 0) < older_than]
        for sha in gone:
            del OBJECTS[sha]
        return len(gone)


def open_memory_store(settings: Any) -> MemoryStore:
    return MemoryStore()
