"""Billing webhooks: tenants register HTTPS endpoints; billing events are delivered to them
signed (HMAC-SHA256, see :mod:`backplane.billing.webhooks.signing`), retried with exponential
backoff, and kept as a visible delivery history.

Public API: :func:`emit_billing_event` for kernel billing code, :func:`verify_signature` for
receivers, and the event type names.
"""

from __future__ import annotations

from backplane.billing.webhooks.events import (
    EVENT_TYPES,
    INVOICE_FINALIZED,
    QUOTA_REACHED,
    WEBHOOK_TEST,
    UnknownEventTypeError,
    emit_billing_event,
)
from backplane.billing.webhooks.signing import (
    SIGNATURE_HEADER,
    InvalidSignatureError,
    sign,
    signature_header,
    verify_signature,
)

__all__ = [
    "EVENT_TYPES",
    "INVOICE_FINALIZED",
    "QUOTA_REACHED",
    "SIGNATURE_HEADER",
    "WEBHOOK_TEST",
    "InvalidSignatureError",
    "UnknownEventTypeError",
    "emit_billing_event",
    "sign",
    "signature_header",
    "verify_signature",
]
