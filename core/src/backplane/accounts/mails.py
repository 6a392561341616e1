"""The texts of the account mails (plain text: every client shows it, no template engine)."""

from __future__ import annotations


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def invite_mail(tenant_name: str, role: str, url: str, ttl_s: int) -> tuple[str, str]:
    subject = f"You are invited to join {tenant_name}"
    text = (
        f"You have been invited to join {tenant_name} as {role}.\n\n"
        f"Accept the invitation here:\n{url}\n\n"
        f"The link works once and expires in {_hours(ttl_s)}. If you did not expect this "
        "invitation, ignore this message.\n"
    )
    return subject, text


def reset_mail(url: str, ttl_s: int) -> tuple[str, str]:
    subject = "Reset your password"
    text = (
        "Someone (hopefully you) asked to reset the password of your account.\n\n"
        f"Choose a new password here:\n{url}\n\n"
        f"The link works once and expires in {_hours(ttl_s)}. Setting a new password ends "
        "every session of the account. If you did not ask for this, ignore this message: "
        "your password stays as it is.\n"
    )
    return subject, text


def verify_mail(url: str, ttl_s: int) -> tuple[str, str]:
    subject = "Confirm your e-mail address"
    text = (
        f"Confirm that this address is yours here:\n{url}\n\n"
        f"The link works once and expires in {_hours(ttl_s)}.\n"
    )
    return subject, text
