"""The mail API under ``/api/mail``: the tenant's sender identity, sending a message, and the
tenant's messages with where their delivery stands. Every query is tenant-scoped by the
session; another tenant's ids answer 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import requires
from backplane.kernel import Kernel
from backplane.mail.compose import MailError, check_address, domain_of, parse_from
from backplane.mail.models import STATUSES, DkimKey, MailMessage, MailSender
from backplane.settings import MailSettings

Address = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]


class SenderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    from_address: Address
    """Its domain must be the installation's default From domain or have a DKIM key
    (``backplane mail dkim-key``): a tenant cannot send as a domain the operator has not set up."""
    from_name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    reply_to: Address | None = None


class SenderOut(msgspec.Struct, kw_only=True):
    from_address: str
    from_name: str
    reply_to: str | None
    dkim_signed: bool
    """Whether mail from this address is DKIM-signed (its domain has a key)."""


class MessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=1000)]
    subject: Annotated[str, msgspec.Meta(max_length=998)]
    text: Annotated[str, msgspec.Meta(max_length=1_000_000)]
    html: Annotated[str, msgspec.Meta(max_length=1_000_000)] | None = None
    reply_to: Address | None = None


class MessageOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    message_id: str
    sender: str
    recipients: list[str]
    subject: str
    status: str
    """``queued``, ``sending``, ``sent``, ``failed`` or ``unconfirmed`` (see
    :mod:`backplane.mail.delivery`)."""
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


def message_out(row: MailMessage) -> MessageOut:
    return msgspec.convert(row, MessageOut, from_attributes=True)


async def _sender_out(db: AsyncSession, config: MailSettings, row: MailSender | None) -> SenderOut:
    if row is None:
        name, address = parse_from(config.default_from)
        reply_to = None
    else:
        name, address, reply_to = row.from_name, row.from_address, row.reply_to
    signed = await db.get(DkimKey, domain_of(address)) is not None
    return SenderOut(from_address=address, from_name=name, reply_to=reply_to, dkim_signed=signed)


class MailController(Controller):
    path = "/mail"
    tags = ["mail"]

    @get("/sender", guards=[requires("mail.manage")], summary="The tenant's sender identity")
    async def get_sender(
        self, db: NamedDependency[AsyncSession], kernel: NamedDependency[Kernel]
    ) -> SenderOut:
        row = await db.scalar(select(MailSender))
        return await _sender_out(db, kernel.settings.mail, row)

    @put("/sender", guards=[requires("mail.manage")], summary="Set the tenant's From and Reply-To")
    async def put_sender(
        self,
        data: JSONBody[SenderIn],
        db: NamedDependency[AsyncSession],
        kernel: NamedDependency[Kernel],
    ) -> SenderOut:
        config = kernel.settings.mail
        try:
            address = check_address(data.from_address)
            reply_to = check_address(data.reply_to) if data.reply_to else None
            _default_name, default_address = parse_from(config.default_from)
        except MailError as exc:
            raise ClientException(str(exc)) from None
        if "\r" in data.from_name or "\n" in data.from_name:
            raise ClientException("from_name must be one line")
        domain = domain_of(address)
        if domain != domain_of(default_address) and await db.get(DkimKey, domain) is None:
            raise ClientException(
                f"mail cannot be sent as {domain}: the operator has not set the domain up "
                f"(backplane mail dkim-key {domain})"
            )
        row = await db.scalar(select(MailSender))
        if row is None:
            row = MailSender(tenant_id=kernel.tenant_id)
            db.add(row)
        row.from_address, row.from_name, row.reply_to = address, data.from_name, reply_to
        row.updated_at = datetime.now(UTC)
        await db.flush()
        return await _sender_out(db, config, row)

    @post(
        "/messages",
        guards=[requires("mail.send")],
        status_code=HTTP_202_ACCEPTED,
        summary="Queue a message from the tenant's sender identity",
    )
    async def send(
        self,
        data: JSONBody[MessageIn],
        db: NamedDependency[AsyncSession],
        kernel: NamedDependency[Kernel],
    ) -> MessageOut:
        try:
            message_id = await kernel.mail.send(
                data.to, data.subject, data.text, html=data.html, reply_to=data.reply_to
            )
        except MailError as exc:
            raise ClientException(str(exc)) from None
        await db.flush()
        row = await db.get(MailMessage, message_id)
        assert row is not None  # just added
        return message_out(row)

    @get("/messages", guards=[requires("mail.read")], summary="The tenant's messages, newest first")
    async def list_messages(
        self,
        db: NamedDependency[AsyncSession],
        status: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[MessageOut]:
        query = select(MailMessage).order_by(MailMessage.created_at.desc()).limit(limit)
        if status is not None:
            if status not in STATUSES:
                raise ClientException(f"status must be one of {', '.join(STATUSES)}")
            query = query.where(MailMessage.status == status)
        return [message_out(row) for row in await db.scalars(query)]

    @get("/messages/{message_id:uuid}", guards=[requires("mail.read")])
    async def get_message(
        self, message_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> MessageOut:
        row = await db.get(MailMessage, message_id)
        if row is None:
            raise NotFoundException("no such message")
        return message_out(row)


ROUTES: list[Any] = [MailController]
