"""The LRS's tables under the data-rights hooks: a person's statements and documents are
found by the identifiers xAPI would name them with: their mailbox (plain or SHA-1) and the
account the plugin's own statements use (:data:`LEARNER_HOME`, their user id).

Erasure deletes every statement that names the person anywhere (actor, object, instructor,
team, authority, inside a SubStatement), and their State and Agent Profile documents.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select

from backplane_education.xapi.models import (
    AGENT_REF,
    XapiActivity,
    XapiAttachment,
    XapiCredential,
    XapiDocument,
    XapiStatement,
    XapiStatementRef,
)

LEARNER_HOME = "urn:backplane:users"
"""``account.homePage`` of the platform's users in statements the plugin emits."""


def identifiers(subject: Any) -> list[str]:
    """The person's agent identifiers, in :func:`.validation.agent_ifi` form."""
    found = []
    if subject.email:
        mailbox = f"mailto:{subject.email}"
        found += [
            f"mbox={mailbox}",
            f"mbox_sha1sum={hashlib.sha1(mailbox.encode(), usedforsecurity=False).hexdigest()}",
        ]
    if subject.user_id is not None:
        found.append(f"account={LEARNER_HOME}|{subject.user_id}")
    return found


def _naming(ifis: list[str]) -> Any:
    return select(XapiStatementRef.seq).where(
        XapiStatementRef.kind == AGENT_REF, XapiStatementRef.value.in_(ifis)
    )


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every LRS row of the tenant (credentials without their digest); for a person, the
    statements naming them and their documents."""
    if subject is None:
        await archive.add_table(XapiStatement)
        await archive.add_table(XapiStatementRef)
        await archive.add_table(XapiDocument)
        await archive.add_table(XapiActivity)
        await archive.add_table(XapiAttachment)
        await archive.add_table(XapiCredential, redact=["secret_digest"])
        return
    ifis = identifiers(subject)
    if not ifis:
        return
    await archive.add_table(XapiStatement, XapiStatement.seq.in_(_naming(ifis)))
    await archive.add_table(XapiDocument, XapiDocument.agent.in_(ifis))


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    ifis = identifiers(subject)
    if not ifis:
        return {}
    seqs = list((await kernel.db.scalars(_naming(ifis))).all())
    await kernel.db.execute(  # the foreign key cascades too; SQLite only with its pragma on
        delete(XapiStatementRef)
        .where(XapiStatementRef.seq.in_(seqs))
        .execution_options(synchronize_session=False)
    )
    statements: Any = await kernel.db.execute(
        delete(XapiStatement)
        .where(XapiStatement.seq.in_(seqs))
        .execution_options(synchronize_session=False)
    )
    documents: Any = await kernel.db.execute(
        delete(XapiDocument)
        .where(XapiDocument.agent.in_(ifis))
        .execution_options(synchronize_session=False)
    )
    return {
        "xapi_statements": int(statements.rowcount or 0),
        "xapi_documents": int(documents.rowcount or 0),
    }
