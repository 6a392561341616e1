"""Email addresses: validated and normalised with ``email-validator``.

Only the syntax is checked (``check_deliverability=False``): a DNS lookup per address would
make imports depend on the network and take seconds per row, and the kernel downloads and
resolves nothing at run time. Bounces (next slice) tell which addresses do not receive mail.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_CHARS = 320


class InvalidEmailError(ValueError):
    """The address is not a valid email address; ``str()`` says why."""


def normalise_email(raw: str) -> str:
    """The address as contacts are keyed by: IDNA-normalised domain, and the whole address in
    lower case (mailbox providers treat local parts case-insensitively in practice, and a
    contact list keyed case-sensitively fills with duplicates)."""
    text = raw.strip()
    if not text:
        raise InvalidEmailError("email is empty")
    if len(text) > MAX_EMAIL_CHARS:
        raise InvalidEmailError(f"email is longer than {MAX_EMAIL_CHARS} characters")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmailError(f"invalid email {text!r}: {error}") from None
    return valid.normalized.lower()
