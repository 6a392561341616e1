"""One HTTP attempt of one delivery: re-check the URL, connect to the checked address, sign,
send, read a bounded answer. Never follows redirects; never uses proxies from the environment
(the connection must go to the address that was checked)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
import time

import httpx
import msgspec

from backplane import __version__
from backplane.billing.webhooks.signing import SIGNATURE_HEADER, signature_header
from backplane.billing.webhooks.urls import Target, UrlRefusedError, check_url
from backplane.settings import WebhookSettings

USER_AGENT = f"Backplane-Webhooks/{__version__}"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt produced; ``ok`` means a 2xx answer."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    body: str | None = None


@functools.cache
def _tls() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def pinned_request(
    target: Target, address: str, body: bytes, headers: dict[str, str]
) -> httpx.Request:
    """A POST to ``address`` that still names ``target.host`` in Host and TLS SNI (so the
    certificate is verified against the name), leaving no second DNS lookup to rebind."""
    url = httpx.URL(target.url)
    extensions: dict[str, object] = {}
    try:
        ipaddress.ip_address(target.host)
        is_literal = True
    except ValueError:
        is_literal = False
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if url.port is not None:
        host_header = f"{host_header}:{url.port}"
    if target.scheme == "https" and not is_literal:
        extensions["sni_hostname"] = target.host
    return httpx.Request(
        "POST",
        url.copy_with(host=address.split("%", 1)[0]),
        content=body,
        headers={**headers, "Host": host_header},
        extensions=extensions,
    )


_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectError, "could not connect to the endpoint"),
    (httpx.RemoteProtocolError, "the endpoint's answer was not valid HTTP"),
    (httpx.NetworkError, "the connection failed during the request"),
)
"""Phrases for the failures that got no answer, most specific first."""


def describe_failure(exc: BaseException, timeout_s: float) -> str:
    """What the delivery history says of an attempt that got no answer: a fixed phrase per
    kind of failure, never the library's message, which may name the address connected to
    (what the tenant's host name resolved to). A certificate problem is named, as it concerns
    the host the tenant gave."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out after {timeout_s:g} s"
    tls = _tls_error(exc)
    if tls is not None:
        detail = tls.verify_message if isinstance(tls, ssl.SSLCertVerificationError) else None
        return "TLS handshake failed" + (f": {detail}" if detail else "")
    for kind, phrase in _FAILURES:
        if isinstance(exc, kind):
            return phrase
    return f"the request failed ({type(exc).__name__})"


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (httpx wraps httpcore's error, which wraps ssl's)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def send(
    url: str, payload: str, secret: str, settings: WebhookSettings, extra_headers: dict[str, str]
) -> Outcome:
    """Deliver ``payload`` to ``url`` once, within ``settings.timeout_s`` in all."""
    try:
        target = await check_url(url, settings)
    except UrlRefusedError as exc:
        return Outcome(ok=False, error=f"refused: {exc}")
    body = payload.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",  # read raw and bounded: no decompression bombs
        SIGNATURE_HEADER: signature_header(secret, body, int(time.time())),
        **extra_headers,
    }
    request = pinned_request(target, target.addresses[0], body, headers)
    limit = settings.max_response_body_bytes
    try:
        async with (
            asyncio.timeout(settings.timeout_s),
            httpx.AsyncClient(
                timeout=settings.timeout_s, follow_redirects=False, trust_env=False, verify=_tls()
            ) as client,
        ):
            response = await client.send(request, stream=True)
            try:
                received = bytearray()
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= limit:
                        break
            finally:
                await response.aclose()
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        return Outcome(ok=False, error=describe_failure(exc, settings.timeout_s))
    text = bytes(received[:limit]).decode("utf-8", errors="replace")
    status = response.status_code
    ok = 200 <= status < 300
    error = None
    if not ok:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return Outcome(ok=ok, status_code=status, error=error, body=text)
