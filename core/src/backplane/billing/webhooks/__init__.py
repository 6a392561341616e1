"""Billing webhooks: tenants register HTTPS endpoints; billing events are delivered to them
signed (HMAC-SHA256, see :mod:`backplane.billing.webhooks.signing`), retried with exponential
backoff, and kept as a visible delivery history.

Events reach them as a subscriber of platform events (:mod:`backplane.events`). Public API:
:func:`verify_signature` for receivers, and the kernel's event type names.
"""

from __future__ import annotations

from backplane.billing.webhooks.events import INVOICE_FINALIZED, QUOTA_REACHED, WEBHOOK_TEST
from backplane.billing.webhooks.signing import (
    SIGNATURE_HEADER,
    InvalidSignatureError,
    sign,
    signature_header,
    verify_signature,
)

__all__ = [
    "INVOICE_FINALIZED",
    "QUOTA_REACHED",
    "SIGNATURE_HEADER",
    "WEBHOOK_TEST",
    "InvalidSignatureError",
    "sign",
    "signature_header",
    "verify_signature",
]
