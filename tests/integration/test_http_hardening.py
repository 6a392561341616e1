"""Issue 15, items 6-8 and 12: request input hardening and diagnosability at the HTTP layer.

Every test runs on SQLite and on PostgreSQL (as the non-owner app role): NUL characters in JSON
bodies, paths and query strings are refused with 400 before they reach either database (PostgreSQL
cannot store them and answered 500); JSON nested deeper than ``server.max_json_depth`` is refused
with 400 before it is decoded (the decoder's recursion answered 500); a body on a JSON route must
be declared JSON (415 otherwise); an unhandled error is logged with its traceback and a request id
that the client sees too; every response carries ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from opentelemetry.trace import SpanKind

from backplane.app import create_app
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant
from tests.integration.test_telemetry import install_memory_exporter

NUL = "\x00"
FAILURE = "/api/kitchen_sink/failure"
NOTES = "/api/kitchen_sink/notes"
INFER = "/v2/models/kitchen_sink_double/infer"
PUBLIC_IP_HOOK = "https://93.184.216.34/hook"  # a public address literal: valid, no DNS
REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
V2_BINARY_HEADER = json.dumps(
    {
        "inputs": [
            {
                "name": "x",
                "shape": [1, 1],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 4},
            }
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }
).encode()
"""A binary-extension V2 request for ``kitchen_sink_double``: one FP32 input of 4 bytes."""


def nested(levels: int, inner: Any = 1) -> Any:
    """``inner`` wrapped in ``levels`` lists."""
    for _ in range(levels):
        inner = [inner]
    return inner


def deep_json(levels: int, key: str, **fields: Any) -> bytes:
    """A JSON object whose ``key`` is ``levels`` nested lists (too deep for ``json.dumps``)."""
    rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
    return f'{{"{key}": {"[" * levels}1{"]" * levels}{rest}}}'.encode()


JSON_HEADERS = {"Content-Type": "application/json"}


def detail(response: Any) -> str:
    return str(response.json().get("detail") or response.json().get("error"))


# --------------------------------------------------------------------------- item 6: NUL


def test_nul_in_json_bodies_is_refused_everywhere(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    auth = dual_tenant_a.headers
    places: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
        "login email": (
            "/api/auth/login",
            {"email": f"owner{NUL}@acme.example.org", "password": PASSWORD},
            {},
        ),
        "usage event transaction_id": (
            "/api/billing/events",
            {"events": [{"transaction_id": f"t{NUL}1", "code": "kitchen_sink.notes"}]},
            auth,
        ),
        "webhook description": (
            "/api/billing/webhooks",
            {"url": PUBLIC_IP_HOOK, "description": f"hook{NUL}"},
            auth,
        ),
        "API key name": ("/api/apikeys", {"name": f"key{NUL}", "role": "member"}, auth),
        "member email": (
            "/api/tenant/members",
            {"email": f"new{NUL}@acme.example.org", "role": "member"},
            auth,
        ),
        "a key, not a value": (NOTES, {"body": "text", f"x{NUL}": 1}, auth),
    }
    answers = {}
    for place, (path, body, headers) in places.items():
        response = dual_client.post(path, json=body, headers=headers)
        answers[place] = (response.status_code, "NUL" in response.text)
    assert answers == dict.fromkeys(places, (400, True)), answers
    # nothing was stored on the way
    keys = dual_client.get("/api/apikeys", headers=auth).json()
    assert [k["name"] for k in keys] == ["test"]
    assert dual_client.get("/api/billing/webhooks", headers=auth).json() == []
    members = dual_client.get("/api/tenant/members", headers=auth).json()
    assert [m["email"] for m in members] == [dual_tenant_a.email]


def test_an_escaped_backslash_before_u0000_is_text_not_nul(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    # The JSON text "a\\u0000b" is a backslash followed by "u0000b": a valid name.
    body = b'{"name": "a\\\\u0000b", "role": "member"}'
    response = dual_client.post(
        "/api/apikeys",
        content=body,
        headers={**dual_tenant_a.headers, **JSON_HEADERS},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\\u0000b"
    # ... while an odd run of backslashes ends in a real \u0000 escape
    odd = b'{"name": "a\\\\\\u0000b", "role": "member"}'
    response = dual_client.post(
        "/api/apikeys",
        content=odd,
        headers={**dual_tenant_a.headers, **JSON_HEADERS},
    )
    assert response.status_code == 400, response.text


def test_nul_in_paths_and_query_strings_is_refused(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    auth = dual_tenant_a.headers
    requests = [
        ("GET", "/api/models/a%00b"),
        ("DELETE", "/api/models/a%00b"),
        ("GET", "/v2/models/a%00b"),
        ("GET", "/v2/models/a%00b/ready"),
        ("POST", "/v2/models/a%00b/infer"),
        ("DELETE", "/api/apikeys/a%00b"),
        ("GET", "/api/billing/plans/a%00b"),
        ("GET", "/api/billing/usage?cursor=%00"),
        ("GET", "/api/models?name=a%00b"),
    ]
    answers = {}
    for method, url in requests:
        response = dual_client.request(method, url, headers=auth)
        answers[method, url] = (response.status_code, "NUL" in response.text)
    assert answers == dict.fromkeys(requests, (400, True)), answers
    # unauthenticated, the check comes first all the same
    assert dual_client.get("/api/billing/plans/a%00b").status_code == 400


def test_nul_in_a_multipart_text_field_is_refused(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    """A model upload's description is text headed for a column (PostgreSQL answered 500);
    the file part itself is data and may hold any byte."""
    from backplane.models import resource

    model = resource("iris_classifier.onnx").read_bytes()
    assert b"\x00" in model
    files = {"file": ("model.onnx", model, "application/octet-stream")}
    refused = dual_client.post(
        "/api/models",
        data={"name": "nul-test", "description": "a\x00b"},
        files=files,
        headers=dual_tenant_a.headers,
    )
    assert refused.status_code == 400, refused.text
    assert "NUL" in refused.json()["detail"]
    accepted = dual_client.post(
        "/api/models",
        data={"name": "nul-test", "description": "ab"},
        files=files,
        headers=dual_tenant_a.headers,
    )
    assert accepted.status_code == 201, accepted.text


def test_a_trailing_newline_does_not_pass_a_name_pattern(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    """``$`` also matches before a final newline: every anchored name pattern uses ``\\Z``."""
    from backplane.models import resource

    files = {"file": ("m.onnx", resource("iris_classifier.onnx").read_bytes(), "x/y")}
    for fields in ({"name": "iris-copy\n"}, {"name": "iris-copy", "version": "2\n"}):
        refused = dual_client.post(
            "/api/models", data=fields, files=files, headers=dual_tenant_a.headers
        )
        assert refused.status_code in (400, 422), (fields, refused.text)


# ------------------------------------------------------------------- item 7: deep nesting


def test_deeply_nested_json_is_refused_before_it_is_decoded(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    deep = deep_json(1000, "email", password=PASSWORD)
    response = dual_client.post("/api/auth/login", content=deep, headers=JSON_HEADERS)
    assert response.status_code == 400, response.text
    assert "nested deeper than 64" in detail(response)
    # the same depth inside strings is only text
    brackets = {"body": "[" * 200 + "{" * 200}  # notes hold up to 500 characters
    response = dual_client.post(NOTES, json=brackets, headers=dual_tenant_a.headers)
    assert response.status_code == 201, response.text


def test_the_depth_limit_is_exact_and_counts_every_level(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    """{"events": [{"properties": {"p": <lists>}}]} is 4 levels before the lists."""

    def event(levels: int, transaction_id: str) -> dict[str, Any]:
        properties = {"p": nested(levels - 4, "x")}
        return {
            "transaction_id": transaction_id,
            "code": "kitchen_sink.notes",
            "properties": properties,
        }

    at_limit = dual_client.post(
        "/api/billing/events", json={"events": [event(64, "t64")]}, headers=dual_tenant_a.headers
    )
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["recorded"] == 1
    over = dual_client.post(
        "/api/billing/events", json={"events": [event(65, "t65")]}, headers=dual_tenant_a.headers
    )
    assert over.status_code == 400, over.text
    assert "nested deeper than 64" in detail(over)


def test_deep_v2_inference_json_is_refused_with_the_protocol_error(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    tensor = deep_json(1000, "data", name="x", shape=[1, 1], datatype="FP32")
    response = dual_client.post(
        INFER,
        content=b'{"inputs": [' + tensor + b"]}",
        headers={**dual_tenant_a.headers, **JSON_HEADERS},
    )
    assert response.status_code == 400, response.text
    assert "nested deeper than 64" in response.json()["error"]
    # with the binary extension only the JSON header is JSON: brackets in the tail are data
    element = b"[" * 200
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(element)},
                }
            ]
        }
    ).encode()
    response = dual_client.post(
        INFER,
        content=header + len(element).to_bytes(4, "little") + element,
        headers={
            **dual_tenant_a.headers,
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    # refused by the model's signature (it takes FP32), not for the brackets of the tail
    assert response.status_code == 400, response.text
    assert "FP32" in response.json()["error"]


def test_the_depth_limit_is_a_setting(data_dir: Path, db_env: dict[str, str]) -> None:
    settings = make_settings(data_dir, {**db_env, "BACKPLANE_SERVER__MAX_JSON_DEPTH": "8"})
    plugins = load_plugins(settings)
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        body = {"events": [{"transaction_id": "t", "code": "c", "properties": {"p": nested(5)}}]}
        response = client.post("/api/billing/events", json=body, headers=tenant.headers)
        assert response.status_code == 400, response.text
        assert "nested deeper than 8" in detail(response)
        body["events"][0]["properties"] = {"p": nested(4)}
        response = client.post("/api/billing/events", json=body, headers=tenant.headers)
        assert response.status_code == 200, response.text


# ---------------------------------------------------------------- item 8: content types

WRONG_CONTENT_TYPES = [
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "json",
    None,
]


def post_raw(
    client: TestClient[Litestar], url: str, body: bytes, content_type: str | None, **headers: str
) -> Any:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(url, content=body, headers=headers)


def test_json_routes_refuse_other_content_types(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    note = json.dumps({"body": "a note"}).encode()
    login = json.dumps({"email": dual_tenant_a.email, "password": PASSWORD}).encode()
    answers = {}
    for content_type in WRONG_CONTENT_TYPES:
        response = post_raw(dual_client, NOTES, note, content_type, **dual_tenant_a.headers)
        public = post_raw(dual_client, "/api/auth/login", login, content_type)
        answers[content_type] = (
            response.status_code,
            public.status_code,
            "application/json" in response.text,
        )
    assert answers == dict.fromkeys(WRONG_CONTENT_TYPES, (415, 415, True)), answers
    assert dual_client.get(NOTES, headers=dual_tenant_a.headers).json() == []


def test_json_routes_accept_json_with_parameters_and_json_suffixes(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    accepted = [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.backplane+json",
        "application/merge-patch+json; charset=utf-8",
    ]
    for index, content_type in enumerate(accepted):
        body = json.dumps({"body": f"note {index}"}).encode()
        response = post_raw(dual_client, NOTES, body, content_type, **dual_tenant_a.headers)
        assert response.status_code == 201, (content_type, response.text)
    notes = dual_client.get(NOTES, headers=dual_tenant_a.headers).json()
    assert len(notes) == len(accepted)


def test_v2_inference_takes_json_or_the_binary_extension_only(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    request = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.5]}]}
    body = json.dumps(request).encode()
    auth = dual_tenant_a.headers
    for content_type in ["text/plain", "application/xml", "application/x-www-form-urlencoded"]:
        response = post_raw(dual_client, INFER, body, content_type, **auth)
        assert response.status_code == 415, (content_type, response.text)
        assert "application/json" in response.json()["error"]
    # JSON, with or without parameters, and no content type at all (tritonclient sends none)
    for content_type in ["application/json", "application/json; charset=utf-8", None]:
        response = post_raw(dual_client, INFER, body, content_type, **auth)
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["outputs"][0]["data"] == [3.0]
    # the binary tensor data extension
    binary = post_raw(
        dual_client,
        INFER,
        V2_BINARY_HEADER + b"\x00\x00\xc0\x3f",  # 1.5 as little-endian float32
        "application/octet-stream",
        **auth,
        **{"Inference-Header-Content-Length": str(len(V2_BINARY_HEADER))},
    )
    assert binary.status_code == 200, binary.text
    assert binary.headers["inference-header-content-length"]


# -------------------------------------------------- item 12: request ids, 500s, nosniff


@pytest.fixture
def error_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.ERROR):
        yield caplog


def failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and "fails on purpose" in str(r.exc_info[1])]


def test_an_unhandled_error_is_logged_with_its_traceback_and_request_id(
    dual_client: TestClient[Litestar],
    dual_tenant_a: Seeded,
    error_log: pytest.LogCaptureFixture,
) -> None:
    response = dual_client.get(FAILURE, headers=dual_tenant_a.headers)
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID.fullmatch(request_id)
    assert response.json() == {
        "status_code": 500,
        "detail": "Internal Server Error",
        "request_id": request_id,
    }
    (record,) = failure_records(error_log)
    assert record.levelno == logging.ERROR
    assert record.request_id == request_id  # type: ignore[attr-defined]
    text = error_log.text
    assert request_id in text
    assert "Traceback" in text
    assert "RuntimeError: kitchen_sink fails on purpose" in text
    assert "GET '/api/kitchen_sink/failure'" in record.getMessage()
    assert dual_tenant_a.api_key not in text  # the credential is never logged


def test_a_sane_incoming_request_id_is_kept_and_others_replaced(
    dual_client: TestClient[Litestar],
    dual_tenant_a: Seeded,
    error_log: pytest.LogCaptureFixture,
) -> None:
    kept = "3f2a-77c1:edge.lb/1+x="
    response = dual_client.get(FAILURE, headers={**dual_tenant_a.headers, "X-Request-ID": kept})
    assert response.headers["x-request-id"] == kept
    assert response.json()["request_id"] == kept
    assert [r.request_id for r in failure_records(error_log)] == [kept]  # type: ignore[attr-defined]
    assert (
        dual_client.get("/health/live", headers={"X-Request-ID": kept}).headers["x-request-id"]
        == kept
    )
    for bad in ["a" * 129, "two words", "line\\nbreak", "<script>", "ünïcode", ""]:
        response = dual_client.get("/health/live", headers={"X-Request-ID": bad.encode()})
        replaced = response.headers["x-request-id"]
        assert replaced != bad, replaced
        assert REQUEST_ID.fullmatch(replaced), (bad, replaced)
    # each request gets its own
    ids = {dual_client.get("/health/live").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_the_request_id_is_on_the_request_span(data_dir: Path, db_env: dict[str, str]) -> None:
    spans = install_memory_exporter()
    settings = make_settings(data_dir, db_env)
    plugins = load_plugins(settings)
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(settings, plugins=plugins)) as client:
        spans.clear()
        ok = client.get("/health/live", headers={"X-Request-ID": "from-the-edge"})
        failed = client.get(FAILURE, headers=tenant.headers)
        missing = client.get("/no/such/route")
    by_id = {
        s.attributes.get("backplane.request_id"): s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.attributes
    }
    for response in (ok, failed, missing):
        assert response.headers["x-request-id"] in by_id, (response.status_code, list(by_id))
    assert ok.headers["x-request-id"] == "from-the-edge"


def test_every_response_says_nosniff_and_carries_a_request_id(
    dual_client: TestClient[Litestar], dual_tenant_a: Seeded
) -> None:
    auth = dual_tenant_a.headers
    responses = {
        "200 JSON": dual_client.get("/health/live"),
        "200 plugin route": dual_client.get(NOTES, headers=auth),
        "201": dual_client.post(NOTES, json={"body": "n"}, headers=auth),
        "404 unknown key": dual_client.delete("/api/apikeys/no-such-key", headers=auth),
        "400": dual_client.post(NOTES, json={"nope": 1}, headers=auth),
        "401": dual_client.get("/api/me"),
        "404 no route": dual_client.get("/no/such/route"),
        "404 handler": dual_client.get("/v2/models/no_such_model", headers=auth),
        "405": dual_client.put("/health/live"),
        "415": dual_client.post(
            NOTES, content=b"{}", headers={**auth, "Content-Type": "text/plain"}
        ),
        "500": dual_client.get(FAILURE, headers=auth),
        "Swagger UI": dual_client.get("/schema"),
        "OpenAPI JSON": dual_client.get("/schema/openapi.json"),
        "static file": dual_client.get("/schema/static/swagger-ui.css"),
        "V2 binary": dual_client.post(
            INFER,
            content=V2_BINARY_HEADER + b"\x00\x00\xc0\x3f",  # 1.5 as little-endian float32
            headers={
                **auth,
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(V2_BINARY_HEADER)),
            },
        ),
    }
    seen = {
        name: (
            r.status_code,
            r.headers.get_list("x-content-type-options"),
            bool(REQUEST_ID.fullmatch(r.headers.get("x-request-id", ""))),
        )
        for name, r in responses.items()
    }
    expected_status = {name: int(name[:3]) if name[:3].isdigit() else 200 for name in responses}
    assert seen == {name: (expected_status[name], ["nosniff"], True) for name in responses}, seen
