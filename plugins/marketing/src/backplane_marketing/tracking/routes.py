"""Public tracking routes (no login: a mail client or a provider calls them) under
``/api/marketing/t/{tenant_id}/``: ``o/{token}`` (open pixel), ``c/{token}/{link}`` (click
redirect to the stored URL only), ``u/{token}`` (GET: a confirmation page that changes
nothing; POST: the RFC 8058 one-click unsubscribe), ``bounces`` (a provider's webhook, JSON)
and ``bounces/dsn`` (a bounce or complaint message as a mail server sends it back), both
authenticated by the tenant's secret. Each opens a session of the tenant named in the path;
tokens are looked up there, so another tenant's token is a 404.

``/api/marketing/webhook-secret`` (admins) makes the bounce webhook's secret (shown once)."""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect
from sqlalchemy import delete, select

from backplane import Kernel, UnknownTenantError, requires
from backplane_marketing.campaigns.models import WebhookSecret
from backplane_marketing.campaigns.send import tracking_base
from backplane_marketing.contacts import add_event
from backplane_marketing.emails import InvalidEmailError, normalise_email
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.models import Contact
from backplane_marketing.plugin import ADMIN
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.tracking.dsn import parse_report
from backplane_marketing.tracking.service import (
    recipient_by_token,
    record_click,
    record_open,
    suppress,
    unsubscribe,
)

PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
Token = Annotated[str, msgspec.Meta(max_length=64)]


class BounceIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    type: Literal["bounce", "complaint"]


class BounceOut(msgspec.Struct, kw_only=True):
    suppressed: bool
    """False when the address is no contact of the tenant (nothing changed)."""


class ReportOut(msgspec.Struct, kw_only=True):
    reported: int
    """Recipients the report names as failed or complaining."""
    suppressed: int
    """Of those, contacts of the tenant now suppressed."""


async def _check_secret(kernel: Kernel, given: str) -> None:
    digest = hashlib.sha256(given.encode()).hexdigest()
    stored = list(await kernel.db.scalars(select(WebhookSecret.secret_sha256)))
    if not given or not any(hmac.compare_digest(digest, s) for s in stored):
        raise MarketingError("a valid webhook secret is required", 401)


async def _suppress_address(kernel: Kernel, address: str, reason: str) -> bool:
    """Suppress the contact with this address (``bounced``/``complained``); whether one was."""
    try:
        normalised = normalise_email(address)
    except InvalidEmailError:
        return False
    contact = await kernel.db.scalar(select(Contact.id).where(Contact.email == normalised))
    if contact is None:
        return False
    assert kernel.tenant_id is not None
    await suppress(kernel.db, kernel.tenant_id, contact, reason)
    add_event(kernel.db, contact, reason, {})
    return True


class SecretOut(msgspec.Struct, kw_only=True):
    secret: str
    url: str


async def _in_tenant(kernel: Kernel, tenant_id: uuid.UUID, work: Any) -> Any:
    try:
        async with kernel.tenant(tenant_id) as bound:
            return await work(bound)
    except UnknownTenantError:
        raise MarketingError("unknown or expired link", 404) from None


def _agent(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("user-agent", "")[:500]


def _page(title: str, body: str) -> Response[str]:
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(page, media_type="text/html", headers=NO_STORE)


class TrackingController(Controller):
    path = "/t/{tenant_id:uuid}"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/o/{token:str}", media_type="image/gif")
    async def open_pixel(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        token: FromPath[str],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> Response[bytes]:
        """The open pixel: counts the recipient's first open (public)."""
        await _in_tenant(
            kernel,
            tenant_id,
            lambda k: record_open(k.db, token[:64], _agent(request), plugin_settings),
        )
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    @get("/c/{token:str}/{link:str}", status_code=302)
    async def click(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        token: FromPath[str],
        link: FromPath[str],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> Redirect:
        """A tracked link: counts the recipient's first click, redirects to the stored URL."""
        url = await _in_tenant(
            kernel,
            tenant_id,
            lambda k: record_click(
                k.db, tenant_id, token[:64], link[:64], _agent(request), plugin_settings
            ),
        )
        return Redirect(path=url, status_code=302, headers=NO_STORE)

    @get("/u/{token:str}")
    async def unsubscribe_page(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """A confirmation page with one button; visiting it changes nothing (link scanners
        follow GETs)."""
        await _in_tenant(kernel, tenant_id, lambda k: recipient_by_token(k.db, token[:64]))
        form = (
            '<p>Stop receiving these emails?</p><form method="post">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)

    @post("/u/{token:str}", status_code=200)
    async def unsubscribe_now(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """RFC 8058 one-click unsubscribe (the body, ``List-Unsubscribe=One-Click``, is not
        needed: the token says who)."""
        await _in_tenant(kernel, tenant_id, lambda k: unsubscribe(k.db, tenant_id, token[:64]))
        return _page("Unsubscribed", "<p>You will not receive these emails any more.</p>")

    @post("/bounces", status_code=200)
    async def bounce(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        data: JSONBody[BounceIn],
        kernel: NamedDependency[Kernel],
    ) -> BounceOut:
        """A provider reports a bounce or complaint: ``Authorization: Bearer <secret>``."""
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()

        async def work(k: Kernel) -> BounceOut:
            await _check_secret(k, given)
            try:
                normalise_email(data.email)
            except InvalidEmailError:
                raise MarketingError(f"{data.email!r} is not an email address", 422) from None
            reason = "bounced" if data.type == "bounce" else "complained"
            return BounceOut(suppressed=await _suppress_address(k, data.email, reason))

        result: BounceOut = await _in_tenant(kernel, tenant_id, work)
        return result

    @post("/bounces/dsn", status_code=200)
    async def bounce_report(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> ReportOut:
        """A bounce (RFC 3464 DSN) or complaint (RFC 5965 abuse report) message as the body
        (``message/rfc822``, at most ``max_report_bytes``): each failed or complaining
        recipient that is a contact is suppressed. ``Authorization: Bearer <secret>``."""
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        raw = await request.body()

        async def work(k: Kernel) -> ReportOut:
            await _check_secret(k, given)
            if len(raw) > plugin_settings.max_report_bytes:
                raise MarketingError(
                    f"the report is {len(raw)} bytes; at most {plugin_settings.max_report_bytes}",
                    413,
                )
            reported = parse_report(raw)
            if not reported:
                raise MarketingError("no failed recipient or abuse report found in the body", 422)
            suppressed = 0
            for address, reason in reported:
                suppressed += int(await _suppress_address(k, address, reason))
            return ReportOut(reported=len(reported), suppressed=suppressed)

        result: ReportOut = await _in_tenant(kernel, tenant_id, work)
        return result


class WebhookSecretController(Controller):
    path = "/webhook-secret"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(ADMIN)])
    async def rotate(self, kernel: NamedDependency[Kernel]) -> SecretOut:
        """A new bounce-webhook secret (shown once; the previous one stops working)."""
        secret = secrets.token_urlsafe(32)
        await kernel.db.execute(delete(WebhookSecret))
        kernel.db.add(WebhookSecret(secret_sha256=hashlib.sha256(secret.encode()).hexdigest()))
        await kernel.audit.record("marketing.webhook_secret_rotated")
        return SecretOut(secret=secret, url=f"{tracking_base(kernel)}/bounces")
