"""Responses that carry a credential or a secret (tokens, API keys, webhook secrets): no cache
on the way may keep them (``Cache-Control: no-store``, and ``Pragma: no-cache`` for HTTP/1.0
caches). Pass both to the route decorator: ``@post(..., cache_control=NO_STORE,
response_headers=NO_CACHE)``."""

from __future__ import annotations

from litestar.datastructures import CacheControlHeader, ResponseHeader

NO_STORE = CacheControlHeader(no_store=True)
NO_CACHE = [ResponseHeader(name="Pragma", value="no-cache")]
