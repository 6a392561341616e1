"""A job's rows as the workers read them: one JSON line per row, cut into chunks by offset.

The upload is read once, when the job is created (so a bad file is refused at once, and the
total is known for the progress). What is stored is not the upload but its rows, normalised
(whatever the dialect or encoding was) with their numbers, lines and per-row errors, plus the
byte offset where each chunk starts: a chunk task then reads exactly its own rows with one
ranged read, however large the job, and a re-run after a crash reads the same rows again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import msgspec

from backplane_documents.jobs_input import DataRow


class Spooled(msgspec.Struct, frozen=True, kw_only=True):
    """What was written: rows (with errors), unreadable rows, chunk offsets and the size."""

    rows: int
    unreadable: int
    offsets: list[int]
    """``offsets[k]`` is where chunk ``k`` starts; chunk ``k`` ends where ``k + 1`` starts
    (the last one at ``size``)."""
    size: int

    def span(self, chunk: int) -> tuple[int, int]:
        """The bytes ``[start, end)`` of chunk ``chunk``."""
        return chunk_span(self.offsets, self.size, chunk)


def chunk_span(offsets: list[int], size: int, chunk: int) -> tuple[int, int]:
    """The bytes ``[start, end)`` of chunk ``chunk`` of a spool (see :class:`Spooled`)."""
    if not 0 <= chunk < len(offsets):
        raise IndexError(f"no chunk {chunk}: the job has {len(offsets)}")
    end = offsets[chunk + 1] if chunk + 1 < len(offsets) else size
    return offsets[chunk], end


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(DataRow)


def spool(rows: Iterable[DataRow], out: BinaryIO, chunk_rows: int) -> Spooled:
    """Write ``rows`` to ``out`` as JSON lines, a new chunk every ``chunk_rows`` rows."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    offsets: list[int] = []
    position = 0
    count = unreadable = 0
    for row in rows:
        if count % chunk_rows == 0:
            offsets.append(position)
        line = _ENCODER.encode(row) + b"\n"
        out.write(line)
        position += len(line)
        count += 1
        unreadable += row.error is not None
    return Spooled(rows=count, unreadable=unreadable, offsets=offsets, size=position)


def read_chunk(data: bytes) -> list[DataRow]:
    """The rows of one chunk's bytes, as :func:`spool` wrote them."""
    return [_DECODER.decode(line) for line in data.splitlines() if line]
