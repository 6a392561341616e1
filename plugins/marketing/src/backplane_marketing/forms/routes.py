"""Forms over HTTP.

``/api/marketing/forms`` (signed in): list and read (``marketing.read``); create, change and
delete (``marketing.forms``: owners and admins); a form's submission counts.

``/api/marketing/f/{tenant_id}/`` (public, no login), the tenant named in the path and every
lookup made in its session (a form id or token of another tenant is a 404):

- ``GET {public_form_id}``: the hosted page; ``POST {public_form_id}``: its submission
  (form-encoded), the page again with a message or the error;
- ``POST {public_form_id}/submissions``: the JSON API for embedding (``{"email": ..., "<field>":
  ...}``): 202 ``{"status": "pending"}``;
- ``GET confirm/{token}``: a page with one button (changes nothing: mail scanners follow
  links); ``POST confirm/{token}``: the confirmation.

Submissions are rate-limited (``Kernel.rate_limit``) per tenant and per client address before
anything is read, and per e-mail address before a confirmation mail is sent: 429 with
``Retry-After``."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody
from sqlalchemy import func, select

from backplane import Kernel, UnknownTenantError, requires
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.forms.models import CONFIRMED, PENDING, Form, FormSubmission
from backplane_marketing.forms.page import PAGE_HEADERS, render_page
from backplane_marketing.forms.service import (
    check_definition,
    check_link,
    confirm,
    page_fields,
    public_base,
    submit,
)
from backplane_marketing.plugin import FORMS, READ
from backplane_marketing.schemas import Tag
from backplane_marketing.settings import MarketingSettings

THANKS = "Thank you! Please check your inbox and confirm your subscription with the link we sent."
MAX_KEYS = 50

FieldName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class FormField(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: FieldName
    """The input's name (``email`` and ``website``, the honeypot, are taken)."""
    label: Label
    maps_to: Literal["name", "attribute"]
    attribute: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    """The custom attribute it fills (``maps_to: attribute``), checked by its type."""
    required: bool = False


class FormIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    title: Label
    intro: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    button: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "Subscribe"
    fields: Annotated[list[FormField], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    list_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    """Lists a confirmed contact is subscribed to."""
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    """Tags a confirmed contact gets (added to theirs)."""
    page_template: str = ""
    """The page's HTML (sandboxed Jinja2; ``{{ form_html }}`` places the form); empty: the
    plugin's page."""
    confirm_subject: Annotated[str, msgspec.Meta(min_length=1, max_length=998)] = (
        "Please confirm your subscription"
    )
    confirm_text: Annotated[str, msgspec.Meta(min_length=1)] = (
        "Hello {{ contact.first_name | default('there') }},\n\nplease confirm that you want to "
        "receive our emails ({{ form.title }}):\n\n{{ confirm_url }}\n\n"
        "If you did not sign up, ignore this message: nothing happens without your click.\n"
    )
    """Sandboxed Jinja2 with ``contact``, ``form`` and ``confirm_url`` (added at the end
    when the text does not place it)."""
    active: bool = True


class FormPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    title: Label | None = None
    intro: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    button: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    fields: Annotated[list[FormField], msgspec.Meta(max_length=20)] | None = None
    list_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=20)] | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] | None = None
    page_template: str | None = None
    confirm_subject: Annotated[str, msgspec.Meta(min_length=1, max_length=998)] | None = None
    confirm_text: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    active: bool | None = None


class FormOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    title: str
    intro: str
    button: str
    fields: list[dict[str, Any]]
    list_ids: list[str]
    tags: list[str]
    page_template: str
    confirm_subject: str
    confirm_text: str
    active: bool
    url: str
    """The hosted page (public)."""
    submit_url: str
    """The JSON API for embedding (public ``POST``)."""
    created_at: datetime
    updated_at: datetime


class FormStats(msgspec.Struct, kw_only=True):
    pending: int
    """Submissions waiting for their confirmation (expired ones included)."""
    confirmed: int


class SubmittedOut(msgspec.Struct, kw_only=True):
    status: str
    detail: str


def form_out(kernel: Kernel, row: Form) -> FormOut:
    assert kernel.tenant_id is not None
    url = f"{public_base(kernel, kernel.tenant_id)}/{row.id}"
    return FormOut(
        id=row.id,
        name=row.name,
        title=row.title,
        intro=row.intro,
        button=row.button,
        fields=list(row.fields),
        list_ids=list(row.list_ids),
        tags=list(row.tags),
        page_template=row.page_template,
        confirm_subject=row.confirm_subject,
        confirm_text=row.confirm_text,
        active=row.active,
        url=url,
        submit_url=f"{url}/submissions",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def find_form(db: Any, form_id: uuid.UUID) -> Form:
    row = await db.scalar(select(Form).where(Form.id == form_id))
    if row is None:
        raise MarketingError(f"no form {form_id}", 404)
    assert isinstance(row, Form)
    return row


async def _name_free(db: Any, name: str, form_id: uuid.UUID | None = None) -> None:
    query = select(Form.id).where(Form.name == name)
    if form_id is not None:
        query = query.where(Form.id != form_id)
    if await db.scalar(query) is not None:
        raise MarketingError(f"a form named {name!r} exists", 409)


def _definition(row: Form) -> tuple[list[dict[str, Any]], list[uuid.UUID], dict[str, str]]:
    texts = {
        "confirm_subject": row.confirm_subject,
        "confirm_text": row.confirm_text,
        "page_template": row.page_template,
    }
    return list(row.fields), [uuid.UUID(i) for i in row.list_ids], texts


class FormsController(Controller):
    path = "/forms"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(FORMS)])
    async def create_form(
        self,
        data: JSONBody[FormIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> FormOut:
        """A signup form (its fields' attributes and its lists must exist)."""
        db = kernel.db
        await _name_free(db, data.name)
        row = Form(
            name=data.name,
            title=data.title,
            intro=data.intro,
            button=data.button,
            fields=[msgspec.to_builtins(f) for f in data.fields],
            list_ids=[str(i) for i in dict.fromkeys(data.list_ids)],
            tags=sorted(set(data.tags)),
            page_template=data.page_template,
            confirm_subject=data.confirm_subject,
            confirm_text=data.confirm_text,
            active=data.active,
        )
        await check_definition(db, *_definition(row), plugin_settings)
        db.add(row)
        await db.flush()
        await kernel.audit.record("marketing.form_created", target=("form", str(row.id)))
        return form_out(kernel, row)

    @get("/", guards=[requires(READ)])
    async def list_forms(self, kernel: NamedDependency[Kernel]) -> list[FormOut]:
        rows = await kernel.db.scalars(select(Form).order_by(Form.created_at, Form.id))
        return [form_out(kernel, row) for row in rows]

    @get("/{form_id:uuid}", guards=[requires(READ)])
    async def get_form(
        self, form_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> FormOut:
        return form_out(kernel, await find_form(kernel.db, form_id))

    @patch("/{form_id:uuid}", guards=[requires(FORMS)])
    async def update_form(
        self,
        form_id: FromPath[uuid.UUID],
        data: JSONBody[FormPatch],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> FormOut:
        """Change a form (fields given replace the old ones); pending submissions keep what
        they were submitted with."""
        db = kernel.db
        row = await find_form(db, form_id)
        if data.name is not None and data.name != row.name:
            await _name_free(db, data.name, row.id)
        for key in ("name", "title", "intro", "button", "page_template", "active"):
            value = getattr(data, key)
            if value is not None:
                setattr(row, key, value)
        for key in ("confirm_subject", "confirm_text"):
            value = getattr(data, key)
            if value is not None:
                setattr(row, key, value)
        if data.fields is not None:
            row.fields = [msgspec.to_builtins(f) for f in data.fields]
        if data.list_ids is not None:
            row.list_ids = [str(i) for i in dict.fromkeys(data.list_ids)]
        if data.tags is not None:
            row.tags = sorted(set(data.tags))
        await check_definition(db, *_definition(row), plugin_settings)
        row.updated_at = datetime.now(UTC)
        await db.flush()
        await kernel.audit.record("marketing.form_changed", target=("form", str(row.id)))
        return form_out(kernel, row)

    @delete("/{form_id:uuid}", guards=[requires(FORMS)], status_code=204)
    async def delete_form(
        self, form_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete a form and its pending submissions (their links stop working); contacts it
        made stay."""
        row = await find_form(kernel.db, form_id)
        await kernel.db.delete(row)
        await kernel.audit.record("marketing.form_deleted", target=("form", str(form_id)))

    @get("/{form_id:uuid}/stats", guards=[requires(READ)])
    async def form_stats(
        self, form_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> FormStats:
        row = await find_form(kernel.db, form_id)
        query = (
            select(FormSubmission.state, func.count())
            .where(FormSubmission.form_id == row.id)
            .group_by(FormSubmission.state)
        )
        counts = {str(s): int(n) for s, n in (await kernel.db.execute(query)).all()}
        return FormStats(pending=counts.get(PENDING, 0), confirmed=counts.get(CONFIRMED, 0))


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _limit_submissions(
    kernel: Kernel,
    tenant_id: uuid.UUID,
    request: Request[Any, Any, Any],
    settings: MarketingSettings,
) -> None:
    await kernel.rate_limit(
        "form_submissions",
        str(tenant_id),
        limit=settings.form_submissions_per_tenant_per_minute,
        window_s=60,
        calls="submissions of this site's forms",
    )
    await kernel.rate_limit(
        "form_submission_address",
        f"{tenant_id}:{_client(request)}",
        limit=settings.form_submissions_per_ip_per_hour,
        window_s=3600,
        calls="submissions from your address",
    )


async def _in_tenant(kernel: Kernel, tenant_id: uuid.UUID, work: Any) -> Any:
    try:
        async with kernel.tenant(tenant_id) as bound:
            return await work(bound)
    except UnknownTenantError:
        raise MarketingError("no such form", 404) from None


def _page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        body,
        media_type="text/html",
        status_code=status,
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def _simple_page(title: str, body: str, status: int = 200) -> Response[str]:
    page = (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    return _page(page, status)


async def _public_form(db: Any, form_id: uuid.UUID) -> Form:
    row = await db.scalar(select(Form).where(Form.id == form_id))
    if row is None or not row.active:
        raise MarketingError("no such form", 404)
    assert isinstance(row, Form)
    return row


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    if len(values) > MAX_KEYS:
        raise MarketingError(f"more than {MAX_KEYS} fields", 422)
    for key, value in values.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise MarketingError(f"field {key[:40]!r} must be a string, number or boolean", 422)
    return values


class PublicFormsController(Controller):
    path = "/f/{tenant_id:uuid}"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/{public_form_id:uuid}", media_type="text/html")
    async def page(
        self,
        tenant_id: FromPath[uuid.UUID],
        public_form_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> Response[str]:
        """The hosted signup page (public)."""

        async def work(k: Kernel) -> str:
            form = await _public_form(k.db, public_form_id)
            fields = await page_fields(k.db, form)
            return render_page(form, fields, "", plugin_settings.max_rendered_chars)

        return _page(await _in_tenant(kernel, tenant_id, work))

    @post("/{public_form_id:uuid}", media_type="text/html", status_code=200)
    async def submit_page(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        public_form_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> Response[str]:
        """The hosted page's submission (``application/x-www-form-urlencoded``): the page
        with the thanks, or with the error (422, 429) and what was entered."""
        limit = plugin_settings.max_rendered_chars
        try:
            await _limit_submissions(kernel, tenant_id, request, plugin_settings)
        except HTTPException as error:
            if error.status_code != 429:
                raise
            text = html.escape(str(error.detail))
            return _simple_page("Too many submissions", f"<p>{text}</p>", 429)
        received = await request.form()
        values = {k: received.get(k) for k in list(received.keys())[:MAX_KEYS]}
        values = {k: v for k, v in values.items() if isinstance(v, str)}

        async def work(k: Kernel) -> Response[str]:
            form = await _public_form(k.db, public_form_id)
            try:
                await submit(k, form, values, plugin_settings)
            except MarketingError as error:
                if error.status != 422:
                    raise
                fields = await page_fields(k.db, form, values)
                return _page(render_page(form, fields, "", limit, error=str(error)), 422)
            except HTTPException as error:
                if error.status_code != 429:
                    raise
                fields = await page_fields(k.db, form, values)
                page = render_page(form, fields, "", limit, error=str(error.detail))
                return _page(
                    page, 429, {"Retry-After": (error.headers or {}).get("Retry-After", "60")}
                )
            return _page(render_page(form, [], "", limit, message=THANKS))

        result: Response[str] = await _in_tenant(kernel, tenant_id, work)
        return result

    @post("/{public_form_id:uuid}/submissions", status_code=202)
    async def submit_json(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[uuid.UUID],
        public_form_id: FromPath[uuid.UUID],
        data: JSONBody[dict[str, Any]],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> SubmittedOut:
        """The JSON API for embedding: ``{"email": "...", "<field name>": ...}`` (public).
        202 whether the address is new or known (a filled honeypot too: nothing happens)."""
        await _limit_submissions(kernel, tenant_id, request, plugin_settings)
        values = _flat(data)

        async def work(k: Kernel) -> None:
            form = await _public_form(k.db, public_form_id)
            await submit(k, form, values, plugin_settings)

        await _in_tenant(kernel, tenant_id, work)
        return SubmittedOut(status="pending", detail=THANKS)

    @get("/confirm/{token:str}", media_type="text/html")
    async def confirm_page(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """The confirmation link's page: one button; visiting it changes nothing."""
        row = await _in_tenant(kernel, tenant_id, lambda k: check_link(k.db, token[:64]))
        if row.state == CONFIRMED:
            return _simple_page("Confirmed", "<p>Your subscription is confirmed.</p>")
        button = (
            '<p>Confirm your subscription?</p><form method="post">'
            '<button type="submit">Yes, subscribe me</button></form>'
        )
        return _simple_page("Confirm your subscription", button)

    @post("/confirm/{token:str}", media_type="text/html", status_code=200)
    async def confirm_now(
        self, tenant_id: FromPath[uuid.UUID], token: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[str]:
        """Confirm: the contact is made or updated and its consent recorded (public)."""
        await _in_tenant(kernel, tenant_id, lambda k: confirm(k, token[:64]))
        return _simple_page("Confirmed", "<p>Thank you: your subscription is confirmed.</p>")
