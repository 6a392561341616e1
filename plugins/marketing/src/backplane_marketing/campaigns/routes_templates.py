"""``/api/marketing/templates``: a tenant's campaign templates, checked when saved (length,
syntax), previewed for a contact or sample data, and sent as a test to one address."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backplane import Kernel, MailError, requires
from backplane_marketing.campaigns.models import CampaignTemplate
from backplane_marketing.campaigns.render import Rendered, check_template, contact_context, render
from backplane_marketing.contacts import find_contact
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.plugin import READ, WRITE
from backplane_marketing.settings import MarketingSettings

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    subject: Annotated[str, msgspec.Meta(min_length=1)]
    text: Annotated[str, msgspec.Meta(min_length=1)]
    html: str = ""


class TemplateOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    subject: str
    html: str
    text: str
    created_at: datetime


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    contact_id: uuid.UUID | None = None
    """Render for this contact; without it, for ``sample`` (``{"email", "name", ...}``)."""
    sample: dict[str, Any] = msgspec.field(default_factory=dict)


class TestSendIn(PreviewIn, forbid_unknown_fields=True, kw_only=True):
    to: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]


class TestSendOut(msgspec.Struct, kw_only=True):
    message_id: uuid.UUID


def template_out(row: CampaignTemplate) -> TemplateOut:
    return TemplateOut(
        id=row.id,
        name=row.name,
        subject=row.subject,
        html=row.html,
        text=row.text,
        created_at=row.created_at,
    )


async def find_template(db: Any, template_id: uuid.UUID) -> CampaignTemplate:
    row: CampaignTemplate | None = await db.scalar(
        select(CampaignTemplate).where(CampaignTemplate.id == template_id)
    )
    if row is None:
        raise MarketingError(f"no template {template_id}", 404)
    return row


async def _rendered(
    kernel: Kernel, template_id: uuid.UUID, data: PreviewIn, settings: MarketingSettings
) -> Rendered:
    template = await find_template(kernel.db, template_id)
    if data.contact_id is not None:
        contact = await find_contact(kernel.db, data.contact_id)
        email, name, attributes = contact.email, contact.name, contact.attributes or {}
    else:
        sample = dict(data.sample)
        email, name = str(sample.pop("email", "someone@example.org")), str(sample.pop("name", ""))
        attributes = sample
    context = contact_context(
        email, name, attributes, unsubscribe_url="#unsubscribe", campaign={"name": "preview"}
    )
    return render(
        template.subject, template.html, template.text, context, settings.max_rendered_chars
    )


class TemplatesController(Controller):
    path = "/templates"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(WRITE)])
    async def create_template(
        self,
        data: JSONBody[TemplateIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> TemplateOut:
        """A template (Jinja2, sandboxed): ``subject``, ``text`` and an optional ``html``."""
        limit = plugin_settings.max_template_chars
        for part, source in (("subject", data.subject), ("html", data.html), ("text", data.text)):
            check_template(source, limit, part)
        row = CampaignTemplate(name=data.name, subject=data.subject, html=data.html, text=data.text)
        kernel.db.add(row)
        try:
            async with kernel.db.begin_nested():
                await kernel.db.flush()
        except IntegrityError:
            raise MarketingError(f"a template named {data.name!r} exists", 409) from None
        return template_out(row)

    @get("/", guards=[requires(READ)])
    async def list_templates(self, kernel: NamedDependency[Kernel]) -> list[TemplateOut]:
        rows = await kernel.db.scalars(select(CampaignTemplate).order_by(CampaignTemplate.name))
        return [template_out(row) for row in rows]

    @get("/{template_id:uuid}", guards=[requires(READ)])
    async def get_template(
        self, template_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> TemplateOut:
        return template_out(await find_template(kernel.db, template_id))

    @delete("/{template_id:uuid}", guards=[requires(WRITE)])
    async def delete_template(
        self, template_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete a template (and the campaigns made from it)."""
        await kernel.db.delete(await find_template(kernel.db, template_id))

    @post("/{template_id:uuid}/preview", guards=[requires(READ)], status_code=200)
    async def preview(
        self,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[PreviewIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> Rendered:
        """The subject, HTML and text as a contact (or sample data) would get them."""
        return await _rendered(kernel, template_id, data, plugin_settings)

    @post("/{template_id:uuid}/test", guards=[requires(WRITE)], status_code=202)
    async def test_send(
        self,
        template_id: FromPath[uuid.UUID],
        data: JSONBody[TestSendIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> TestSendOut:
        """Send the rendered template to one address (no tracking, subject marked [Test])."""
        message = await _rendered(kernel, template_id, data, plugin_settings)
        try:
            sent = await kernel.mail.send(
                data.to, f"[Test] {message.subject}", message.text, html=message.html
            )
        except MailError as error:
            raise MarketingError(str(error), 422) from None
        await kernel.audit.record(
            "marketing.template_test_sent", target=("template", str(template_id))
        )
        return TestSendOut(message_id=sent)
