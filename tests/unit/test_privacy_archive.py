"""The export archive: entries filed per plugin, checksums in the manifest, limits, names."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backplane.privacy.archive import ArchiveWriter, ExportEntryError, ExportTooLargeError

TENANT = {"id": uuid.uuid4(), "slug": "acme", "name": "Acme"}


async def chunks() -> AsyncIterator[bytes]:
    for n in range(3):
        yield bytes([n]) * 1000


def test_rows_and_files_are_filed_per_plugin_with_checksums(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    writer = ArchiveWriter(path, tenant=TENANT)
    row = {"id": uuid.uuid4(), "at": datetime(2026, 1, 2, tzinfo=UTC), "data": {"k": [1]}}

    async def write() -> None:
        archive = writer.view("helpdesk", None, TENANT["id"])
        assert await archive.add_rows("helpdesk_tickets", [row, row]) == 2
        await archive.add_file("attachments/a.bin", chunks())

    asyncio.run(write())
    manifest = writer.close(plugins=["helpdesk"])
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("helpdesk/helpdesk_tickets.jsonl").splitlines()
        data = archive.read("helpdesk/files/attachments/a.bin")
        written = json.loads(archive.read("manifest.json"))
    assert json.loads(lines[0]) == {
        "id": str(row["id"]),
        "at": "2026-01-02T00:00:00Z",
        "data": {"k": [1]},
    }
    table = written["tables"]["helpdesk_tickets"]
    assert table["rows"] == 2
    assert table["sha256"] == hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()
    file = written["files"]["helpdesk/files/attachments/a.bin"]
    assert file == {**file, "bytes": 3000, "sha256": hashlib.sha256(data).hexdigest()}
    assert written["tenant"]["slug"] == "acme"
    assert manifest["plugins"] == ["helpdesk"]


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../b", "", "sp ace", "x\n"])
def test_unsafe_entry_names_are_refused(tmp_path: Path, name: str) -> None:
    writer = ArchiveWriter(tmp_path / "x.zip", tenant=TENANT)
    archive = writer.view("helpdesk", None, TENANT["id"])
    with pytest.raises(ExportEntryError, match="unsafe entry name"):
        asyncio.run(archive.add_file(name, b"x"))
    writer.abort()
    assert not (tmp_path / "x.zip").exists()


def test_a_table_exported_twice_is_refused(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path / "x.zip", tenant=TENANT)
    archive = writer.view("helpdesk", None, TENANT["id"])
    asyncio.run(archive.add_rows("t", []))
    with pytest.raises(ExportEntryError, match="exported twice"):
        asyncio.run(archive.add_rows("t", []))


def test_the_limit_stops_the_export(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path / "x.zip", tenant=TENANT, limit=2500)
    archive = writer.view("helpdesk", None, TENANT["id"])
    with pytest.raises(ExportTooLargeError, match="larger than its limit of 2500 bytes"):
        asyncio.run(archive.add_file("big", chunks()))
