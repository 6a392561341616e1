"""The sandbox's wire protocol between a server process and its render workers: one
length-prefixed msgpack frame per job and per reply, over the worker's stdin and stdout (an
empty frame from a new worker says it is ready)."""

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
    data_json: str
    max_output_bytes: int
    max_pages: int
    preview: bool = False


class Reply(msgspec.Struct, array_like=True):
    ok: bool
    content: bytes = b""
    pages: int = 0
    error: str = ""
    kind: str = "template"


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
