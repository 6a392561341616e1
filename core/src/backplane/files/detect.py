"""The content type of a stored file, from its first bytes: never the client's word.

puremagic (pure Python, a maintained table of magic numbers) names binary formats; text it
cannot name is ``text/plain`` when the head decodes as UTF-8 without control characters other
than whitespace, and ``application/octet-stream`` otherwise. The type decides how a download
is served (inline for media, as an attachment otherwise), so a file claiming to be an image
while holding HTML is served as what it is.
"""

from __future__ import annotations

import puremagic

SNIFF_BYTES = 8192
"""How much of the head is examined (magic numbers sit in the first few hundred bytes)."""
OCTET_STREAM = "application/octet-stream"
_TEXT_CONTROLS = {9, 10, 12, 13}

INLINE_PREFIXES = ("image/", "video/", "audio/")
"""Types a browser may show in place; everything else downloads as an attachment."""
NEVER_INLINE = frozenset({"image/svg+xml"})
"""SVG is a document that runs scripts: always an attachment."""


def detect_content_type(head: bytes) -> str:
    """The media type of a file whose first bytes are ``head`` (up to :data:`SNIFF_BYTES`)."""
    if not head:
        return OCTET_STREAM
    try:
        found: str = puremagic.from_string(head[:SNIFF_BYTES], mime=True)
    except (puremagic.PureError, ValueError):
        found = ""
    if found:
        return found
    return "text/plain" if _looks_like_text(head[:SNIFF_BYTES]) else OCTET_STREAM


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the sniffing limit
            return False
        text = head[: exc.start].decode("utf-8")
    return not any(ord(c) < 32 and ord(c) not in _TEXT_CONTROLS for c in text)


def shown_inline(content_type: str) -> bool:
    """Whether a download of this type is ``Content-Disposition: inline``."""
    return content_type.startswith(INLINE_PREFIXES) and content_type not in NEVER_INLINE
