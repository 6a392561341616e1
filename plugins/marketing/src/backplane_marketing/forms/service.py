"""What forms do: check a form's definition, take a submission (honeypot, field mapping,
validation, the confirmation mail) and confirm it.

Double opt-in: a submission changes no contact. It is stored with the SHA-256 of an opaque
random token, and the confirmation mail (through the kernel's mail service, queued in the
same transaction) carries the token's link. Only the confirmation (a POST from the page the
link opens: mail scanners follow GETs) makes or updates the contact: the mapped name and
attributes, the form's tags and lists, consent ``granted`` with the form as its source and the
time of confirmation; an ``unsubscribed`` suppression is lifted (the person asked again, and
proved it), a bounce or complaint is not. Then the contact's timeline gets ``form_submitted``
and the platform event ``marketing.form_submitted`` is emitted for automations.

Every answer to a submission is the same whether the address is new, pending or already a
contact, so the form tells nobody who is subscribed."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from backplane import MailError
from backplane_marketing.attributes import AttributeValueError, check_value, definitions_of
from backplane_marketing.campaigns.models import Suppression
from backplane_marketing.campaigns.render import contact_context, render
from backplane_marketing.contacts import add_event, set_subscriptions
from backplane_marketing.dialect import insert_for
from backplane_marketing.emails import InvalidEmailError, normalise_email
from backplane_marketing.errors import MarketingError
from backplane_marketing.forms.models import CONFIRMED, PENDING, Form, FormSubmission
from backplane_marketing.forms.page import HONEYPOT, INPUT_TYPES
from backplane_marketing.models import AttributeDefinition, Contact, ContactTag, MailingList
from backplane_marketing.schemas import SubscriptionIn
from backplane_marketing.settings import MarketingSettings

FORM_SUBMITTED = "marketing.form_submitted"
"""The platform event of a confirmed submission: ``{"form_id", "form", "contact_id",
"submission_id"}``."""
PUBLIC = "/api/marketing/f"
RESERVED = frozenset({"email", HONEYPOT})
MAX_VALUE_CHARS = 2000


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def public_base(kernel: Any, tenant_id: uuid.UUID) -> str:
    """Where the tenant's public form URLs start (``mail.link_base_url``)."""
    return f"{str(kernel.settings.mail.link_base_url).rstrip('/')}{PUBLIC}/{tenant_id}"


async def check_definition(
    db: Any,
    fields: Sequence[Mapping[str, Any]],
    list_ids: list[uuid.UUID],
    texts: Mapping[str, str],
    settings: MarketingSettings,
) -> None:
    """422/404 for a form whose fields, lists or templates cannot work."""
    from backplane_marketing.campaigns.render import check_template
    from backplane_marketing.forms.page import check_page_template

    names = [f["name"] for f in fields]
    if len(set(names)) != len(names):
        raise MarketingError("two fields have the same name", 422)
    if reserved := RESERVED & set(names):
        raise MarketingError(f"field name {sorted(reserved)[0]!r} is reserved", 422)
    definitions = definitions_of(await db.scalars(select(AttributeDefinition)))
    for field in fields:
        if field["maps_to"] == "attribute":
            key = field.get("attribute")
            if not key:
                raise MarketingError(f"field {field['name']!r} maps to an attribute: name it", 422)
            if key not in definitions:
                known = ", ".join(sorted(definitions)) or "none defined"
                raise MarketingError(f"unknown attribute {key!r} (known: {known})", 422)
        elif field.get("attribute"):
            raise MarketingError(
                f"field {field['name']!r}: attribute is for maps_to attribute", 422
            )
    if sum(f["maps_to"] == "name" for f in fields) > 1:
        raise MarketingError("at most one field maps to the name", 422)
    if list_ids:
        found = set(await db.scalars(select(MailingList.id).where(MailingList.id.in_(list_ids))))
        if missing := set(list_ids) - found:
            raise MarketingError(f"no list {sorted(map(str, missing))[0]}", 404)
    limit = settings.max_template_chars
    check_template(texts["confirm_subject"], limit, "confirmation subject")
    check_template(texts["confirm_text"], limit, "confirmation text")
    check_page_template(texts["page_template"], limit)


async def page_fields(
    db: Any, form: Form, values: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The page's inputs: ``email`` first, then the form's fields (typed by their attribute)."""
    definitions = definitions_of(await db.scalars(select(AttributeDefinition)))
    values = values or {}
    shown = [
        {
            "name": "email",
            "label": "Email",
            "input": "email",
            "required": True,
            "value": str(values.get("email", ""))[:320],
        }
    ]
    for field in form.fields:
        definition = definitions.get(field.get("attribute") or "")
        kind = definition.type if definition is not None else "string"
        shown.append(
            {
                "name": field["name"],
                "label": field["label"],
                "input": INPUT_TYPES.get(kind, "text"),
                "required": bool(field.get("required")),
                "value": str(values.get(field["name"], ""))[:MAX_VALUE_CHARS],
            }
        )
    return shown


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


async def _mapped(
    db: Any, form: Form, values: Mapping[str, Any], settings: MarketingSettings
) -> tuple[str, str, dict[str, Any]]:
    """(normalised email, name, attributes) of a submission; 422 naming the field at fault."""
    raw_email = values.get("email")
    if not isinstance(raw_email, str) or not raw_email.strip():
        raise MarketingError("email is required", 422)
    try:
        email = normalise_email(raw_email[:320])
    except InvalidEmailError as error:
        raise MarketingError(str(error), 422) from None
    definitions = definitions_of(await db.scalars(select(AttributeDefinition)))
    name, attributes = "", {}
    for field in form.fields:
        value = values.get(field["name"])
        if not _filled(value):
            if field.get("required"):
                raise MarketingError(f"{field['label']} is required", 422)
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise MarketingError(f"{field['label']} is longer than {MAX_VALUE_CHARS}", 422)
        if field["maps_to"] == "name":
            if not isinstance(value, str):
                raise MarketingError(f"{field['label']} must be text", 422)
            name = " ".join(value.split())[:200]
            continue
        definition = definitions.get(field["attribute"])
        if definition is None:  # removed since the form was made: the value has nowhere to go
            continue
        try:
            attributes[definition.key] = check_value(
                definition, value, settings.max_attribute_chars
            )
        except AttributeValueError as error:
            raise MarketingError(f"{field['label']}: {error}", 422) from None
    return email, name, attributes


async def submit(
    kernel: Any, form: Form, values: Mapping[str, Any], settings: MarketingSettings
) -> FormSubmission | None:
    """Take a submission of ``form`` (in the tenant's session ``kernel``): None when the
    honeypot was filled (nothing stored, nothing sent), else the pending submission whose
    confirmation mail is queued. The per-address limit counts confirmation mails."""
    if not form.active:
        raise MarketingError("this form is closed", 404)
    if _filled(values.get(HONEYPOT)):
        return None
    email, name, attributes = await _mapped(kernel.db, form, values, settings)
    await kernel.rate_limit(
        "form_confirmation",
        email,
        limit=settings.form_confirmations_per_address_per_day,
        window_s=86_400,
        calls="confirmation mails to this address",
    )
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    confirm_url = f"{public_base(kernel, kernel.tenant_id)}/confirm/{token}"
    context = contact_context(
        email,
        name,
        attributes,
        confirm_url=confirm_url,
        form={"title": form.title, "name": form.name},
    )
    limit = settings.max_rendered_chars
    message = render(form.confirm_subject, "", form.confirm_text, context, limit)
    text = message.text
    if confirm_url not in text:
        text = f"{text.rstrip()}\n\n{confirm_url}\n"
    try:  # nothing is added before this: a refused message leaves no row behind
        mail_id = await kernel.mail.send(email, message.subject, text)
    except MailError as error:
        raise MarketingError(f"cannot send the confirmation mail: {error}", 422) from None
    row = FormSubmission(
        form_id=form.id,
        email=email,
        name=name,
        attributes=attributes,
        token_sha256=token_digest(token),
        state=PENDING,
        mail_id=mail_id,
        created_at=now,
        expires_at=now + timedelta(hours=settings.form_confirm_hours),
    )
    kernel.db.add(row)
    await kernel.db.flush()
    return row


async def submission_by_token(db: Any, token: str, *, lock: bool = False) -> FormSubmission:
    query = select(FormSubmission).where(FormSubmission.token_sha256 == token_digest(token))
    row = await db.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise MarketingError("unknown or expired link", 404)
    assert isinstance(row, FormSubmission)
    return row


def _expired(row: FormSubmission) -> bool:
    ends = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    return row.state == PENDING and ends <= datetime.now(UTC)


async def check_link(db: Any, token: str) -> FormSubmission:
    """The submission of a confirmation link (404 unknown, 410 expired)."""
    row = await submission_by_token(db, token)
    if _expired(row):
        raise MarketingError("this confirmation link has expired; please sign up again", 410)
    return row


async def confirm(kernel: Any, token: str) -> tuple[FormSubmission, bool]:
    """Confirm the submission of ``token``: (the submission, whether this call confirmed it;
    False when it already was). 404 unknown, 410 expired. The form's new tags, its lists and
    the submission itself fire the automations listening for them."""
    from backplane_marketing.automations import form_submitted
    from backplane_marketing.automations.engine import enrol

    db = kernel.db
    row = await submission_by_token(db, token, lock=True)
    if row.state == CONFIRMED:
        return row, False
    if _expired(row):
        raise MarketingError("this confirmation link has expired; please sign up again", 410)
    form = await db.get(Form, row.form_id)
    assert form is not None  # the submission cascades with its form
    now = datetime.now(UTC)
    contact_id = await _contact_for(kernel, row, now)
    contact = await db.scalar(select(Contact).where(Contact.id == contact_id).with_for_update())
    assert contact is not None
    if row.name:
        contact.name = row.name
    if row.attributes:
        contact.attributes = {**(contact.attributes or {}), **row.attributes}
    source = f"form:{form.name}"[:200]
    contact.consent, contact.consent_source, contact.consent_at = "granted", source, now
    contact.updated_at = now
    add_event(db, contact.id, "consent_changed", {"status": "granted", "source": source})
    for tag in sorted(set(form.tags)):
        added: Any = await db.execute(
            insert_for(db, ContactTag.__table__)
            .values(tenant_id=kernel.tenant_id, contact_id=contact.id, tag=tag)
            .on_conflict_do_nothing()
        )
        if added.rowcount:  # a tag the contact had fires nothing, as elsewhere
            await enrol(db, contact.id, "tag_added", tag)
    wanted = [uuid.UUID(i) for i in form.list_ids]
    if wanted:
        lists = set(await db.scalars(select(MailingList.id).where(MailingList.id.in_(wanted))))
        await set_subscriptions(db, contact.id, [SubscriptionIn(list_id=i) for i in sorted(lists)])
    await db.execute(
        delete(Suppression)
        .where(Suppression.contact_id == contact.id, Suppression.reason == "unsubscribed")
        .execution_options(synchronize_session=False)
    )
    row.state, row.confirmed_at, row.contact_id = CONFIRMED, now, contact.id
    data = {
        "form_id": str(form.id),
        "form": form.name,
        "contact_id": str(contact.id),
        "submission_id": str(row.id),
    }
    add_event(db, contact.id, "form_submitted", {"form_id": str(form.id), "form": form.name})
    await db.flush()
    await form_submitted(kernel, contact.id, str(form.id))  # and queues the runs' first steps
    await kernel.events.emit(FORM_SUBMITTED, data)
    return row, True


async def _contact_for(kernel: Any, row: FormSubmission, now: datetime) -> uuid.UUID:
    """The contact with the submission's address, made if there is none (race-safe)."""
    db = kernel.db
    values = {
        "id": uuid.uuid4(),
        "tenant_id": kernel.tenant_id,
        "email": row.email,
        "name": "",
        "attributes": {},
        "consent": "unknown",
        "consent_source": "",
        "created_at": now,
        "updated_at": now,
    }
    statement = (
        insert_for(db, Contact)
        .values(values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "email"])
        .returning(Contact.id)
    )
    made = await db.scalar(statement)
    if made is not None:
        return uuid.UUID(str(made))
    found = await db.scalar(select(Contact.id).where(Contact.email == row.email))
    assert found is not None
    return uuid.UUID(str(found))


async def purge_expired_sign_ups(kernel: Any) -> None:
    """Daily, per tenant: delete the sign-ups never confirmed whose link expired more than
    ``form_keep_expired_days`` ago. Nobody consented to keeping them: the address and what was
    entered must not outlive the link that could have confirmed them."""
    settings: MarketingSettings = kernel.plugin_settings
    cutoff = datetime.now(UTC) - timedelta(days=settings.form_keep_expired_days)
    await kernel.db.execute(
        delete(FormSubmission).where(
            FormSubmission.state == PENDING, FormSubmission.expires_at < cutoff
        )
    )
