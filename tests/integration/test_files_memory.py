"""A 1 GiB file goes up and comes down through a real ``backplane serve`` while the server's
resident memory stays flat: growth under 50 MB for the download (and the upload), measured
from /proc while the transfer runs. Slow (about half a minute) and meant to run in CI."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.files_helpers import LiveFiles, live_files

pytestmark = pytest.mark.slow

GIB = 1024**3
CHUNK = 1024 * 1024
MAX_GROWTH = 50 * 1024 * 1024


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (a server may fork workers)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        total += int(rss.split()[1]) * 1024
        pending += [int(c) for c in children]
    return total


class PeakMemory:
    """Samples a process's resident memory every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.baseline = resident_bytes(pid)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes(self.pid))
            time.sleep(0.02)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFiles]:
    with live_files(tmp_path_factory.mktemp("files-memory")) as served:
        yield served


def test_a_1_gib_upload_and_download_keep_the_server_memory_flat(live: LiveFiles) -> None:
    base, headers = live.server.base, live.a.headers
    pid = live.server.process.pid
    warm = live.upload(os.urandom(3 * CHUNK), "warm-up")  # first-request imports and caches
    httpx.get(f"{base}/api/files/{warm['id']}/content", headers=headers, timeout=30)

    block = os.urandom(CHUNK)
    expected = hashlib.sha256()
    for _ in range(GIB // CHUNK):
        expected.update(block)

    def body() -> Iterator[bytes]:
        for _ in range(GIB // CHUNK):
            yield block

    with PeakMemory(pid) as upload:
        answer = httpx.post(
            f"{base}/api/files",
            params={"name": "big.bin"},
            content=body(),
            headers=headers,
            timeout=300,
        )
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert (stored["size"], stored["sha256"]) == (GIB, expected.hexdigest())

    received, digest = 0, hashlib.sha256()
    with (
        PeakMemory(pid) as download,
        httpx.stream(
            "GET", f"{base}/api/files/{stored['id']}/content", headers=headers, timeout=300
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw(CHUNK):
            received += len(chunk)
            digest.update(chunk)
    assert (received, digest.hexdigest()) == (GIB, expected.hexdigest())
    print(
        f"server RSS {download.baseline / 2**20:.0f} MiB; growth: upload "
        f"{upload.growth / 2**20:.1f} MiB, download {download.growth / 2**20:.1f} MiB"
    )
    assert download.growth < MAX_GROWTH, f"download grew the server by {download.growth} bytes"
    assert upload.growth < MAX_GROWTH, f"upload grew the server by {upload.growth} bytes"
