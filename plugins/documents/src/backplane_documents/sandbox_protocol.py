"""The sandbox's wire protocol between a server process and its render workers: one
length-prefixed msgpack frame per job and one per row of the job's reply, over the worker's
stdin and stdout (an empty frame from a new worker says it is ready).

A job carries a batch of rows for one template: one round trip per batch rather than per
document (the worker renders the next row while the server reads the last reply), and a reply
frame per row as soon as it is rendered, so the server can hold every row to its own time
limit and knows which row a dead worker was on."""

from __future__ import annotations

import os
import select
import struct
import time

import msgspec

HEADER = struct.Struct("!I")


class Job(msgspec.Struct, array_like=True):
    engine: str
    source: bytes
    rows: list[str]
    """Each row's data as a JSON string; the worker replies once per row, in order."""
    max_output_bytes: int
    max_pages: int
    preview: bool = False


class Reply(msgspec.Struct, array_like=True):
    ok: bool
    content: bytes = b""
    pages: int = 0
    error: str = ""
    kind: str = "template"
    peak_memory_kib: int = 0
    """The worker's peak resident memory so far, with the job's last reply only (0 before it;
    the pool retires a worker that grew)."""


def read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            # poll, not select: a long-lived server process may hold descriptors past
            # select()'s FD_SETSIZE (1024), which select() refuses outright
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            if wait <= 0 or not poller.poll(wait * 1000):
                raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]
