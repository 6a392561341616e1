"""The byte-level body checks of ``backplane.web``: exact on well-formed JSON, whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backplane.web import contains_nul_escape, is_json_media_type, json_nesting_exceeds

# Strings full of what could fool a scanner: brackets, quotes, backslashes, NULs, the text
# of a \u0000 escape.
tricky_text = st.lists(st.sampled_from([*'[]{}"\\:,ax \n\x00é', "\\u0000"])).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(holds_nul, value))
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    return False


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(value=json_values, ensure_ascii=st.booleans())
def test_checks_agree_with_the_decoded_value(value: Any, ensure_ascii: bool) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    assert msgspec.json.decode(body) == value
    levels = depth(value)
    for limit in range(levels + 2):
        assert json_nesting_exceeds(body, limit) is (levels > limit), (body, limit)
    assert contains_nul_escape(body) is holds_nul(value)


def test_only_the_first_end_bytes_are_json() -> None:
    header = b'{"inputs": []}'
    body = header + b"[" * 500
    assert not json_nesting_exceeds(body, 2, len(header))
    assert json_nesting_exceeds(body, 2)


def test_malformed_json_counts_what_a_recursive_decoder_would_descend_into() -> None:
    assert json_nesting_exceeds(b"[" * 65, 64)  # never closed
    assert not json_nesting_exceeds(b"[" * 64, 64)
    assert json_nesting_exceeds(b"[[]" + b"[" * 64, 64)
    assert not json_nesting_exceeds(b"[[]" + b"[" * 63, 64)
    assert not json_nesting_exceeds(b"]" * 65 + b"[" * 64, 64)
    assert not json_nesting_exceeds(b'"' + b"[" * 65, 64)  # an unclosed string: text


def test_big_bodies_of_every_shape_are_judged() -> None:
    shallow = b"[" + b",".join([b"[1]"] * 100_000) + b"]"
    assert not json_nesting_exceeds(shallow, 2)
    assert json_nesting_exceeds(shallow, 1)
    # longer than one vectorised chunk, with a string and its escapes across chunk borders
    blocks = [b"[" * 40 + b"]" * 40] * 30_000
    text = b'\\\\\\\\\\"' + b"[" * 3_000_000  # JSON: \\ \\ \" then brackets, all text
    deep = b'["' + text + b'", ' + b",".join(blocks) + b"]"
    assert not json_nesting_exceeds(deep, 41)
    assert json_nesting_exceeds(deep, 40)


@pytest.mark.parametrize(
    ("body", "nul"),
    [
        (rb'"\u0000"', True),
        (rb'"\\u0000"', False),
        (rb'"\\\u0000"', True),
        (rb'"\\\\u0000"', False),
        (rb'"\\" , "\u0000"', True),
        (rb'"u0000 \n"', False),
        (b'"no escape at all"', False),
    ],
)
def test_a_nul_escape_needs_an_odd_run_of_backslashes(body: bytes, nul: bool) -> None:
    assert contains_nul_escape(body) is nul


@pytest.mark.parametrize(
    ("content_type", "json_"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        (" Application/JSON ;charset=UTF-8", True),
        ("application/vnd.api+json", True),
        ("application/merge-patch+json; charset=utf-8", True),
        ("application/+json", False),
        ("application/jsonx", False),
        ("text/json", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: str | None, json_: bool) -> None:
    assert is_json_media_type(content_type) is json_
