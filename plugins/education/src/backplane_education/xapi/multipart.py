"""``multipart/mixed`` statement requests and responses (xAPI 1.0.3 Part Three, 1.5.2).

A request carries the statement(s) as the first part (``application/json``) and each attachment
as a later part with its SHA-2 in ``X-Experience-API-Hash``; the LRS checks every hash against
the bytes and against the statements' attachment lists. Parsing uses the standard library's
email parser (binary-safe with the HTTP policy); building is plain concatenation, because an
email generator would re-encode binary parts.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

import msgspec

from backplane_education.xapi.validation import XapiError, bad

HASH_HEADER = "X-Experience-API-Hash"
_DIGESTS = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}


class Part(msgspec.Struct, frozen=True):
    """One attachment part: its declared hash (lower-case hex), content type and bytes."""

    sha2: str
    content_type: str
    content: bytes


def sha2_matches(declared: str, content: bytes) -> bool:
    """Whether ``content`` hashes to ``declared`` under the SHA-2 variant its length names."""
    digest = _DIGESTS.get(len(declared))
    return digest is not None and digest(content).hexdigest() == declared.lower()


def parse_mixed(content_type: str, body: bytes) -> tuple[Any, list[Part]]:
    """The decoded JSON of the first part and the attachment parts, or a 400 naming why."""
    if "boundary=" not in content_type:
        raise bad("multipart/mixed needs a boundary parameter")
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
        policy=email.policy.HTTP,
    )
    if not message.is_multipart():
        raise bad("the multipart/mixed body has no parts")
    parts = list(message.iter_parts())
    if not parts:
        raise bad("the multipart/mixed body has no parts")
    first = parts[0]
    if first.get_content_type() != "application/json":
        raise bad("the first part of a multipart/mixed request must be application/json")
    try:
        document = msgspec.json.decode(_payload(first))
    except msgspec.DecodeError as error:
        raise bad(f"the statement part is not JSON: {error}") from None
    attachments = []
    for index, part in enumerate(parts[1:], start=1):
        declared = part.get(HASH_HEADER)
        if not declared:
            raise bad(f"part {index} has no {HASH_HEADER} header")
        encoding = (part.get("Content-Transfer-Encoding") or "binary").strip().lower()
        if encoding != "binary":
            raise bad(f"part {index}: Content-Transfer-Encoding must be binary")
        content = _payload(part)
        if not sha2_matches(declared.strip(), content):
            raise bad(f"part {index}: {HASH_HEADER} does not match its content")
        attachments.append(Part(declared.strip().lower(), part.get_content_type(), content))
    return document, attachments


def _payload(part: Any) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def check_parts(statements: list[dict[str, Any]], parts: list[Part]) -> dict[str, Part]:
    """Every attachment without ``fileUrl`` has its part and every part is referenced (400
    otherwise); the parts by hash."""
    by_hash = {part.sha2: part for part in parts}
    wanted: set[str] = set()
    for statement in statements:
        for attachment in _attachments_of(statement):
            sha2 = str(attachment.get("sha2", "")).lower()
            if sha2 in by_hash:
                wanted.add(sha2)
            elif "fileUrl" not in attachment:
                raise bad(f"attachment {sha2} has neither a part nor a fileUrl")
    extra = set(by_hash) - wanted
    if extra:
        raise bad(f"parts {sorted(extra)} are not attachments of any statement")
    return by_hash


def _attachments_of(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Attachment entries, read before validation: anything malformed is left for it (400)."""
    found = statement.get("attachments", [])
    found = list(found) if isinstance(found, list) else []
    target = statement.get("object", {})
    if isinstance(target, dict) and target.get("objectType") == "SubStatement":
        inner = target.get("attachments", [])
        found.extend(inner if isinstance(inner, list) else [])
    return [entry for entry in found if isinstance(entry, dict)]


def build_mixed(document: bytes, parts: Iterable[Part]) -> tuple[bytes, str]:
    """A ``multipart/mixed`` body of the JSON ``document`` and ``parts``, and its content type."""
    boundary = secrets.token_hex(16)
    dash = b"--" + boundary.encode()
    chunks = [dash, b"\r\nContent-Type: application/json\r\n\r\n", document, b"\r\n"]
    for part in parts:
        chunks += [
            dash,
            f"\r\nContent-Type: {part.content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"{HASH_HEADER}: {part.sha2}\r\n\r\n".encode("latin-1"),
            part.content,
            b"\r\n",
        ]
    chunks += [dash, b"--\r\n"]
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


__all__ = ["HASH_HEADER", "Part", "XapiError", "build_mixed", "check_parts", "parse_mixed"]
