"""The alternate request syntax (xAPI 1.0.3 Part Three 1.3), for clients that can only POST
(cross-origin requests from a browser): ``POST /xapi/<resource>?method=PUT`` with an
``application/x-www-form-urlencoded`` body carrying the request's headers (``Authorization``,
``X-Experience-API-Version``, ``Content-Type``, ``If-Match``, ``If-None-Match``), its
parameters, and its body as the ``content`` field.

The POST handlers of the LRS's resources hand such a request to :func:`dispatch`, which replays
it through the application as the request it stands for (so it meets the same authentication,
checks and handler as that one), and answers with that request's response.

Gap: the credential must still travel in the ``Authorization`` header. Authentication runs
before any handler, and the kernel's auth backends see the request's headers, never its body,
so an ``Authorization`` form field cannot authenticate the request (it is refused with 401);
the kernel would need to hand auth backends the body of such requests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import Request, Response

from backplane_education.xapi.validation import XapiError, bad

METHODS = frozenset({"GET", "PUT", "POST", "DELETE"})
HEADER_FIELDS = frozenset(
    {
        "authorization",
        "x-experience-api-version",
        "content-type",
        "content-length",
        "if-match",
        "if-none-match",
    }
)
FORM = "application/x-www-form-urlencoded"
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
"""The outer request's own body headers, never the replayed request's."""


def is_alternate(scope: Any) -> bool:
    """A POST whose query string names a ``method``."""
    query = scope.get("query_string", b"").decode("latin-1")
    return scope.get("method") == "POST" and any(
        name == "method" for name, _ in parse_qsl(query, keep_blank_values=True)
    )


async def _form(request: Request[Any, Any, Any], limit: int) -> dict[str, str]:
    """The form fields (400 unless the request is well-formed alternate syntax)."""
    extra = sorted(set(request.query_params) - {"method"})
    if extra:
        raise bad(f"the alternate request syntax takes only method= in the URL, not {extra}")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise bad(f"the alternate request syntax needs a {FORM} body")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise XapiError(413, f"the body is larger than {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise XapiError(413, f"the body is larger than {limit} bytes")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise bad("the form body is not valid application/x-www-form-urlencoded") from None
    form: dict[str, str] = {}
    for name, value in fields:
        key = name.lower() if name.lower() in HEADER_FIELDS else name
        if key in form:
            raise bad(f"the form field {name} appears twice")
        form[key] = value
    return form


async def dispatch(request: Request[Any, Any, Any], limit: int) -> Response[Any]:
    """Answer an alternate-syntax request with the response of the request it stands for."""
    method = request.query_params.get("method", "").upper()
    if method not in METHODS:
        raise bad(f"method must be one of {', '.join(sorted(METHODS))}")
    form = await _form(request, limit)
    content = form.pop("content", "").encode("utf-8")
    replaced = _BODY_HEADERS | (HEADER_FIELDS & set(form))
    headers = [
        (name, value)
        for name, value in request.scope["headers"]
        if name.decode("latin-1").lower() not in replaced
    ]
    for name in HEADER_FIELDS - {"content-length"}:
        if name in form:
            headers.append((name.encode("latin-1"), form.pop(name).encode("latin-1")))
    form.pop("content-length", None)
    headers.append((b"content-length", str(len(content)).encode()))
    scope = {
        key: value
        for key, value in request.scope.items()
        if key not in ("state", "user", "auth", "route_handler", "path_params")
    }
    scope |= {
        "method": method,
        "query_string": urlencode(form).encode("latin-1"),
        "headers": headers,
        "state": {},
    }
    return await _replay(request, scope, content)


async def _replay(request: Request[Any, Any, Any], scope: Any, content: bytes) -> Response[Any]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    status, answer_headers, chunks = 500, [], []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers = message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    application: Any = request.app  # plain ASGI callables; Litestar types its events narrowly
    await application(scope, receive, send)
    kept = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in answer_headers
        if name.lower() not in (b"content-length", b"content-type")
    }
    media = next(
        (v.decode("latin-1") for n, v in answer_headers if n.lower() == b"content-type"),
        "application/json",
    )
    return Response(b"".join(chunks), status_code=status, headers=kept, media_type=media)
