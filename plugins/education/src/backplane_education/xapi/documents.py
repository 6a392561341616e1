"""Document resources' rules (State, Activity Profile, Agent Profile; xAPI 1.0.3 Part Three 1.3,
2.4-2.8): ETags, ``If-Match``/``If-None-Match`` preconditions, and the JSON merge of ``POST``.

Pure functions, so the rules are tested without HTTP; :mod:`.routes_documents` applies them
inside the transaction that holds the document's row lock.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from backplane_education.xapi.validation import XapiError, bad

JSON_TYPE = "application/json"


def etag_of(content: bytes) -> str:
    """A strong ETag: the quoted SHA-1 of the content (what the specification's examples use)."""
    return '"' + hashlib.sha1(content, usedforsecurity=False).hexdigest() + '"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _matches(header: str, current: str | None) -> bool:
    tags = _tags(header)
    if "*" in tags:
        return current is not None
    if current is None:
        return False
    bare = current.strip('"')
    return any(tag.removeprefix("W/").strip('"') == bare for tag in tags)


def check_preconditions(
    *,
    if_match: str | None,
    if_none_match: str | None,
    current_etag: str | None,
    require_for_existing: bool,
) -> None:
    """412 when ``If-Match`` or ``If-None-Match`` fails against the stored document's ETag
    (``current_etag`` None: none stored); 409 when the document exists, neither header came and
    the resource demands one (Activity and Agent Profile ``PUT``: lost updates are refused)."""
    if if_match is not None and not _matches(if_match, current_etag):
        raise XapiError(412, "If-Match does not match the document's current ETag")
    if if_none_match is not None and _matches(if_none_match, current_etag):
        raise XapiError(412, "If-None-Match matches the document's current ETag")
    if (
        require_for_existing
        and current_etag is not None
        and if_match is None
        and if_none_match is None
    ):
        raise XapiError(
            409, "the document exists: send If-Match (its ETag) or If-None-Match to change it"
        )


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == JSON_TYPE


def json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(content)
    except msgspec.DecodeError:
        raise bad(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad(f"{what} must be a JSON object to be merged")
    return value


def merged(
    stored: bytes | None, stored_type: str | None, posted: bytes, posted_type: str | None
) -> bytes:
    """``POST``'s result: both JSON objects merge at the top level (posted keys win); with no
    stored document the posted one is stored as is; anything else is a 400."""
    if not is_json(posted_type):
        raise bad("POST merges JSON documents: send Content-Type application/json")
    update = json_object(posted, "the posted document")
    if stored is None:
        return msgspec.json.encode(update)
    if not is_json(stored_type):
        raise bad("the stored document is not JSON, so it cannot be merged")
    current = json_object(stored, "the stored document")
    current.update(update)
    return msgspec.json.encode(current)
