"""Which endpoint URLs are acceptable: the SSRF rules, checked at registration and again at
every delivery (a name that resolved to a public address yesterday may resolve to
``127.0.0.1`` today: DNS rebinding).

Rules: HTTPS only (``http`` with ``webhooks.allow_http``); no credentials in the URL; the host
must resolve, and every address it resolves to must be public (globally routable unicast:
not private, loopback, link-local, multicast, reserved, unspecified or shared, also when
embedded in IPv6 as IPv4-mapped or 6to4, and no Teredo). ``webhooks.allow_private_addresses``
lifts the address rule for development and tests. The delivery connects to the very address
that was checked (see :mod:`backplane.billing.webhooks.delivery`), never resolving twice.

Refusals are shown to the tenant (a 422, the delivery history): they may name what the tenant
typed, never what the server's resolver answered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import msgspec

from backplane.settings import WebhookSettings

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_TEREDO = ipaddress.ip_network("2001::/32")


class UrlRefusedError(ValueError):
    """An endpoint URL breaks one of the rules; the message names the rule."""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A checked URL: where to connect, and what to call the host in Host and SNI."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...] = ()


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only (IPv4 inside IPv6 is unwrapped)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if address in _TEREDO:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def parse_url(url: str, settings: WebhookSettings) -> Target:
    """The static rules (scheme, length, host, credentials); no DNS."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlRefusedError(f"not a valid URL: {exc}") from None
    allowed = ("https", "http") if settings.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UrlRefusedError(
            "the URL must use https"
            + ("" if settings.allow_http else " (http only with webhooks.allow_http)")
        )
    if not parts.hostname:
        raise UrlRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefusedError("the URL must not contain credentials (user:password@)")
    if parts.fragment:
        raise UrlRefusedError("the URL must not contain a fragment (#...)")
    default = 443 if parts.scheme == "https" else 80
    return Target(url=url.strip(), scheme=parts.scheme, host=parts.hostname, port=port or default)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to simulate DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


NOT_PUBLIC = (
    "the URL's host must resolve to public addresses only "
    "(webhooks.allow_private_addresses is for development)"
)
"""The one refusal for a host name that does not resolve and for one that resolves to a
non-public address: saying which, or what it resolved to, would let tenants map internal DNS."""

UNRESOLVED = "the URL's host does not resolve"
"""With ``webhooks.allow_private_addresses`` (development) every address is allowed, so there
is nothing to hide and a name that does not resolve is called that."""


async def check_url(url: str, settings: WebhookSettings) -> Target:
    """Apply every rule, resolving the host now; return the target with its checked addresses.

    A refusal names a literal address the caller typed, but never what a host name resolves
    to, nor the resolver's error (see :data:`NOT_PUBLIC`)."""
    target = parse_url(url, settings)
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        if not settings.allow_private_addresses and not is_public(literal):
            raise UrlRefusedError(
                f"the URL names the non-public address {literal}; only public addresses are "
                "allowed (webhooks.allow_private_addresses is for development)"
            )
        return msgspec.structs.replace(target, addresses=(str(literal),))
    refusal = UNRESOLVED if settings.allow_private_addresses else NOT_PUBLIC
    try:
        addresses = await resolve(target.host, target.port)
    except (OSError, UnicodeError):
        raise UrlRefusedError(refusal) from None
    if not addresses:
        raise UrlRefusedError(refusal)
    if not settings.allow_private_addresses:
        for text in addresses:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise UrlRefusedError(NOT_PUBLIC)
    return msgspec.structs.replace(target, addresses=tuple(addresses))
