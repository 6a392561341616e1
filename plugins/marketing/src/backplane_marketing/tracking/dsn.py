"""Bounce and complaint reports as mail: a delivery status notification (RFC 3464,
``multipart/report; report-type=delivery-status``) names each failed recipient in a
``message/delivery-status`` part (``Action: failed``, ``Final-Recipient: rfc822; addr``); an
abuse report (RFC 5965, ``message/feedback-report``, ``Feedback-Type: abuse``) names the
complaining recipient in ``Original-Rcpt-To``. Parsed with the standard ``email`` package."""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from typing import Any


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _kind, _, address = value.partition(";")
    address = (address or value).strip().strip("<>").strip()
    return address or None


def _fields(part: Message) -> list[Message]:
    """The header blocks of a status or feedback part (the email package gives a list of
    messages for ``message/delivery-status``, one text payload for feedback reports)."""
    payload: Any = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    if isinstance(payload, str):
        return [email.message_from_string(payload)]
    return []


def parse_report(raw: bytes) -> list[tuple[str, str]]:
    """``(address, "bounced" | "complained")`` for each recipient the report is about."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: list[tuple[str, str]] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in _fields(part):
                action = (block.get("Action") or "").strip().lower()
                address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
                if action == "failed" and address:
                    found.append((address, "bounced"))
        elif kind == "message/feedback-report":
            for block in _fields(part):
                feedback = (block.get("Feedback-Type") or "").strip().lower()
                address = _address(block.get("Original-Rcpt-To"))
                if feedback == "abuse" and address:
                    found.append((address, "complained"))
    return found
