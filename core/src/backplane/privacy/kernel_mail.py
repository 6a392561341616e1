"""Mail and invitations under the data-rights hooks.

A person's data here is what was sent to them (messages naming their address among the
recipients) and the invitations to their address. Erasure deletes both: a queued message to an
erased person must not go out afterwards, and a sent one is only a copy of what they received.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, select

from backplane.accounts.models import Invite
from backplane.kernel import Kernel
from backplane.mail.models import MailMessage, MailSender
from backplane.privacy.archive import ExportArchive
from backplane.privacy.subjects import Subject

SECRETS: dict[Any, tuple[str, ...]] = {Invite: ("token_hash",)}


async def export_mail(kernel: Kernel, archive: ExportArchive, subject: Subject | None) -> None:
    """The tenant's messages, sender identity and invitations; or the subject's share of them."""
    if subject is None:
        for model in (MailMessage, MailSender, Invite):
            await archive.add_table(model, redact=SECRETS.get(model, ()))
        return
    if subject.email is None:
        return
    await archive.add_table(Invite, Invite.email == subject.email, redact=SECRETS[Invite])
    rows = [
        {column: getattr(message, column) for column in _MESSAGE_COLUMNS}
        for message in await _messages_to(kernel, subject.email)
    ]
    await archive.add_rows(MailMessage.__tablename__, rows)


async def erase_mail(kernel: Kernel, subject: Subject) -> dict[str, int]:
    """Delete the messages to the person and the invitations to their address."""
    if subject.email is None:
        return {}
    messages = await _messages_to(kernel, subject.email)
    for message in messages:
        await kernel.db.delete(message)
    invites: Any = await kernel.db.execute(
        delete(Invite)
        .where(Invite.email == subject.email)
        .execution_options(synchronize_session=False)
    )
    return {
        MailMessage.__tablename__: len(messages),
        Invite.__tablename__: int(invites.rowcount or 0),
    }


_MESSAGE_COLUMNS = tuple(c.key for c in MailMessage.__table__.columns)


async def _messages_to(kernel: Kernel, email: str) -> list[MailMessage]:
    """Messages with ``email`` among their recipients: narrowed in SQL by the JSON text, then
    matched exactly (case-insensitively, as addresses are compared)."""
    wanted = email.lower()
    candidates = await kernel.db.scalars(
        select(MailMessage).where(
            cast(MailMessage.recipients, String).ilike(f"%{_like(wanted)}%", escape="\\")
        )
    )
    return [m for m in candidates if wanted in (r.lower() for r in m.recipients)]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
