"""Byte-level checks of a request body before it is decoded, cheap on ordinary bodies.

Pure functions over :class:`bytes` (no Litestar), shared by the JSON request class and by the
V2 inference route, which reads its body itself. The common case costs a few ``memchr`` passes:
a body with no backslash cannot hold a ``\\u0000`` escape, and a body with no more ``[`` and
``{`` than the depth limit cannot nest deeper than it. Only bodies that fail those tests are
scanned further, in time linear in their size (C-speed ``bytes`` operations and numpy, never a
Python loop per byte), a fraction of what decoding the same body costs.
"""

from __future__ import annotations

from typing import Final

import numpy as np

_NUL_ESCAPE: Final = b"\\u0000"
_BACKSLASH: Final = 0x5C
_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"')
_QUOTE: Final = ord('"')
_STEPS: Final = np.zeros(256, np.int8)
_STEPS[list(b"[{")] = 1
_STEPS[list(b"]}")] = -1
_CHUNK: Final = 1 << 20
"""Bytes of structure looked at per vectorised step (some 12 times that in temporaries)."""
_JSON_SUFFIX_MIN: Final = len("application/") + len("x+json")


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value declares JSON: ``application/json`` or
    ``application/<anything>+json`` (RFC 6839), in any case, with any parameters."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json":
        return True
    return (
        len(media) >= _JSON_SUFFIX_MIN
        and media.startswith("application/")
        and media.endswith("+json")
    )


def contains_nul_escape(body: bytes) -> bool:
    """Whether JSON text ``body`` holds a ``\\u0000`` escape, i.e. decodes to a NUL character.

    ``\\\\u0000`` is an escaped backslash followed by the text ``u0000``, not a NUL: an escape
    counts only when the run of backslashes ending in its own is odd. A raw NUL byte is not
    looked for: JSON does not allow one anywhere, and the decoder refuses it.
    """
    if b"\\" not in body:
        return False
    at = body.find(_NUL_ESCAPE)
    while at >= 0:
        start = at
        while start > 0 and body[start - 1] == _BACKSLASH:
            start -= 1
        if (at - start) % 2 == 0:
            return True
        at = body.find(_NUL_ESCAPE, at + 1)
    return False


def _count_up_to(body: bytes, char: bytes, most: int, end: int | None) -> int:
    """Occurrences of ``char`` in ``body[:end]``, counting no further than ``most + 1``.

    ``bytes.find`` of one byte is ``memchr``, many times faster than ``bytes.count``.
    """
    found = 0
    at = body.find(char, 0, end)
    while at >= 0 and found <= most:
        found += 1
        at = body.find(char, at + 1, end)
    return found


def json_nesting_exceeds(body: bytes, limit: int, end: int | None = None) -> bool:
    """Whether the JSON text ``body[:end]`` nests arrays and objects more than ``limit`` deep.

    ``1``, ``[]`` and ``{}`` are 0, 1 and 1 levels deep; ``{"a": [1]}`` is 2. Brackets inside
    strings do not count. Decoding stays safe however deep the body is: this runs before the
    recursive decoder, which would otherwise run out of stack (a ``RecursionError``). Exact on
    well-formed JSON; on malformed JSON (which the decoder refuses anyway) it counts what a
    recursive decoder would descend into before finding the error.
    """
    openers = _count_up_to(body, b"[", limit, end)
    if openers <= limit:
        openers += _count_up_to(body, b"{", limit - openers, end)
    if openers <= limit:
        return False
    text = body if end is None else body[:end]
    if b"\\" in text:
        # Drop escapes that could end a string early: escaped backslashes (paired from the
        # left, as a run of them is read), then escaped quotes. Outside strings JSON has none.
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return _deepest(text.translate(None, _NOT_STRUCTURE)) > limit


def _deepest(structure: bytes) -> int:
    """The deepest nesting in ``structure``: JSON reduced to brackets and quotes, no escapes.

    Vectorised, a chunk at a time (bounded memory): a bracket counts when an even number of
    quotes precede it (it is outside any string); the depth is the running sum of +1 for an
    opener and -1 for a closer. Time is linear whatever the nesting looks like.
    """
    deepest = depth = 0
    in_string = 0
    for start in range(0, len(structure), _CHUNK):
        codes = np.frombuffer(structure, np.uint8, min(_CHUNK, len(structure) - start), start)
        quotes = np.cumsum(codes == _QUOTE, dtype=np.int32)
        outside = (quotes & 1) == in_string
        levels = np.cumsum(_STEPS[codes] * outside, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
        in_string ^= int(quotes[-1] & 1)
    return deepest
