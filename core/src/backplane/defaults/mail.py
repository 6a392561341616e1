"""Mail: the ``files`` and ``smtp`` transports, delivery and its dispatcher, the mail API, and
the account mail flows (invitations, password resets, e-mail verification)."""

from __future__ import annotations

from typing import Any

from backplane._contract import MailTransport, Permission
from backplane.hookspecs import hookimpl


def _open_files(settings: Any, password: str | None) -> Any:
    from backplane.mail.transports import open_files

    return open_files(settings, password)


def _open_smtp(settings: Any, password: str | None) -> Any:
    from backplane.mail.smtp import open_smtp  # aiosmtplib: only where mail goes by SMTP

    return open_smtp(settings, password)


@hookimpl
def register_mail_transports(register: Any) -> None:
    register(MailTransport(name="files", open=_open_files))
    register(MailTransport(name="smtp", open=_open_smtp))


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.accounts.invites import ROUTES as INVITE_ROUTES
    from backplane.accounts.passwords import ROUTES as RESET_ROUTES
    from backplane.accounts.verification import ROUTES as VERIFY_ROUTES
    from backplane.mail.routes import ROUTES

    register(*ROUTES, *INVITE_ROUTES, *RESET_ROUTES, *VERIFY_ROUTES)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="mail.manage",
            roles=("owner", "admin"),
            description="Set the tenant's sender identity (From, Reply-To)",
        ),
        Permission(
            code="mail.send",
            roles=("owner", "admin"),
            description="Send mail as the tenant through the API",
        ),
        Permission(
            code="mail.read",
            roles=("owner", "admin"),
            description="See the tenant's messages and where their delivery stands",
        ),
    )


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane.accounts.passwords import mail_password_reset
    from backplane.accounts.retention import prune_mail_history
    from backplane.mail.delivery import deliver_mail, dispatch_mail

    # Retries are the message's own (mail settings), so the task itself is not retried; its
    # time limit covers the attempt (mail.attempt_timeout_s, at most 600 s) and its records.
    register(deliver_mail, queue="backplane", max_retries=0, time_limit_ms=660_000)
    register(dispatch_mail, queue="backplane", schedule="* * * * *")
    register(mail_password_reset, queue="backplane", max_retries=5, time_limit_ms=60_000)
    register(prune_mail_history, queue="backplane", schedule="47 * * * *", time_limit_ms=600_000)
