"""``/xapi/statements`` (xAPI 1.0.3 Part Three 2.1): PUT one, POST one or many, GET by id or
by query with ``more`` paging, ``format`` and ``attachments``.

The handlers take ``kernel`` (its ``db`` and ``plugin_settings``), not ``db`` and
``plugin_settings`` side by side: Litestar resolves independent dependencies of one handler
concurrently, in an anyio task group per request, which cost about 7 % of a single statement's
server CPU; ``kernel`` depends on ``db``, so the two resolve one after the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, Principal
from backplane_education.xapi import alternate, reader, store
from backplane_education.xapi.http import (
    answer,
    check_scope,
    check_version,
    read_body,
    xapi_settings,
)
from backplane_education.xapi.multipart import Part, build_mixed, check_parts, parse_mixed
from backplane_education.xapi.query import StatementQuery, parse_statement_query
from backplane_education.xapi.settings import XapiSettings
from backplane_education.xapi.shape import accept_languages
from backplane_education.xapi.signatures import check_signed
from backplane_education.xapi.validation import XapiError, bad, is_uuid


def authority_of(request: Request[Any, Any, Any], principal: Principal) -> dict[str, Any]:
    """The credential as an Agent: the authority of every statement it stores."""
    key = principal.token_id.split(":", 2)[2]
    home = str(request.base_url).rstrip("/") + "/xapi"
    return {"objectType": "Agent", "account": {"homePage": home, "name": key}}


async def _statements_in(
    request: Request[Any, Any, Any], limits: XapiSettings
) -> tuple[Any, dict[str, Part]]:
    """The JSON statement(s) of the request and its attachment parts by hash."""
    body = await read_body(request, limits.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/mixed":
        document, parts = parse_mixed(content_type, body)
        for part in parts:
            if len(part.content) > limits.max_attachment_bytes:
                raise XapiError(413, f"an attachment is larger than {limits.max_attachment_bytes}")
        statements = document if isinstance(document, list) else [document]
        by_hash = check_parts([s for s in statements if isinstance(s, dict)], parts)
        return document, by_hash
    if media != "application/json":
        raise bad("statements are sent as application/json or multipart/mixed")
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise bad(f"the body is not JSON: {error}") from None
    statements = document if isinstance(document, list) else [document]
    check_parts([s for s in statements if isinstance(s, dict)], [])  # only fileUrl ones
    return document, {}


async def _store(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    principal: Principal,
    statements: list[Any],
    parts: dict[str, Part],
) -> list[str]:
    prepared = store.prepare(statements, authority_of(request, principal), store.now())
    for statement, _ in prepared:
        check_signed(statement, parts)
    await store.save_statements(db, principal.tenant_id, prepared, parts)
    return [statement["id"] for statement, _ in prepared]


@put("/statements", status_code=200)
async def put_statement(
    request: Request[Any, Any, Any], kernel: NamedDependency[Kernel]
) -> Response[Any]:
    """Store one statement under the id in ``statementId`` (204; 409 if that id holds another)."""
    check_version(request)
    principal = check_scope(request, "write")
    params = dict(request.query_params)
    unknown = sorted(set(params) - {"statementId"})
    if unknown:
        raise bad(f"unknown parameters: {', '.join(unknown)}")
    statement_id = params.get("statementId")
    if statement_id is None or not is_uuid(statement_id):
        raise bad("PUT needs statementId, a UUID")
    document, parts = await _statements_in(request, xapi_settings(kernel.plugin_settings))
    if not isinstance(document, dict):
        raise bad("PUT takes one statement (a JSON object)")
    if "id" in document and str(document["id"]).lower() != statement_id.lower():
        raise bad("the statement's id differs from statementId")
    document["id"] = statement_id.lower()
    await _store(request, kernel.db, principal, [document], parts)
    return answer(status=204)


@post("/statements", status_code=200)
async def post_statements(
    request: Request[Any, Any, Any], kernel: NamedDependency[Kernel]
) -> Response[Any]:
    """Store one statement or a batch; the ids, in order (all or none are stored). With
    ``method=`` in the URL: the alternate request syntax (:mod:`.alternate`)."""
    limits = xapi_settings(kernel.plugin_settings)
    if alternate.is_alternate(request.scope):
        return await alternate.dispatch(request, limits.max_body_bytes)
    check_version(request)
    principal = check_scope(request, "write")
    if request.query_params:
        raise bad(f"unknown parameters: {', '.join(sorted(request.query_params))}")
    document, parts = await _statements_in(request, limits)
    statements = document if isinstance(document, list) else [document]
    if not statements:
        raise bad("no statements to store")
    if len(statements) > limits.max_statements_per_post:
        raise XapiError(413, f"at most {limits.max_statements_per_post} statements per request")
    return answer(await _store(request, kernel.db, principal, statements, parts))


@get("/statements")
async def get_statements(
    request: Request[Any, Any, Any], kernel: NamedDependency[Kernel]
) -> Response[Any]:
    """One statement (``statementId``/``voidedStatementId``) or a page of a query."""
    check_version(request)
    principal = check_scope(request, "read")
    db, limits = kernel.db, xapi_settings(kernel.plugin_settings)
    consistent = store.stored_time(store.now())
    params = dict(request.query_params)
    after = None
    if "more" in params:
        query, after = reader.decode_more(params["more"])
    else:
        query = parse_statement_query(params, limits.max_page)
    languages = accept_languages(request.headers.get("accept-language"))
    headers = {"X-Experience-API-Consistent-Through": consistent}
    tenant_id = principal.tenant_id
    if query.statement_id or query.voided_statement_id:
        wanted = query.statement_id or query.voided_statement_id or ""
        payload = await reader.single(db, tenant_id, wanted, voided=bool(query.voided_statement_id))
        if payload is None:
            raise XapiError(404, f"no statement {wanted}")
        stored = msgspec.json.decode(payload)["stored"]
        modified = datetime.fromisoformat(stored.replace("Z", "+00:00"))
        headers["Last-Modified"] = modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
        [body] = await reader.formatted(db, tenant_id, [payload], query.format, languages)
        return await _respond(db, tenant_id, query, body, [payload], headers)
    found = await reader.page(db, tenant_id, query, after)
    bodies = await reader.formatted(db, tenant_id, found.payloads, query.format, languages)
    result = b'{"statements":[' + b",".join(bodies) + b'],"more":'
    result += msgspec.json.encode(found.more) + b"}"
    return await _respond(db, tenant_id, query, result, found.payloads, headers)


async def _respond(
    db: AsyncSession,
    tenant_id: Any,
    query: StatementQuery,
    body: bytes,
    payloads: list[bytes],
    headers: dict[str, str],
) -> Response[Any]:
    if not query.attachments:
        return answer(body, headers=headers)
    parts = await reader.attachment_parts(db, tenant_id, payloads)
    mixed, content_type = build_mixed(body, parts)
    return answer(mixed, media_type=content_type, headers=headers)


HANDLERS = [put_statement, post_statements, get_statements]
