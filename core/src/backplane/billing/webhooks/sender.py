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
    request = httpx.Request(
        "POST",
        url.copy_with(host=address.split("%", 1)[0]),
        content=body,
        headers={**headers, "Host": host_header},
        extensions=extensions,
    )
    return request


async def send(
    url: str,
    payload: str,
    secret: str,
    settings: WebhookSettings,
    extra_headers: dict[str, str],
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
    except TimeoutError:
        return Outcome(ok=False, error=f"timed out after {settings.timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    except OSError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    text = bytes(received[:limit]).decode("utf-8", errors="replace")
    status = response.status_code
    ok = 200 <= status < 300
    error = None
    if not ok:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return Outcome(ok=ok, status_code=status, error=error, body=text)
