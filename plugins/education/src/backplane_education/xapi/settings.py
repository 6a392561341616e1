"""The LRS's limits: explicit, configurable (``[plugins.education.xapi]``)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class XapiSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 32 * 1024 * 1024
    """A statements or document request with a larger body is refused with 413."""
    max_statements_per_post: Annotated[int, msgspec.Meta(ge=1)] = 5_000
    """Statements one POST may carry (a batch of 1,000 is well within); more is a 413."""
    max_attachment_bytes: Annotated[int, msgspec.Meta(ge=1)] = 16 * 1024 * 1024
    """One attachment part larger than this is refused with 413."""
    max_page: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Statements one GET returns at most (``limit=0`` means this); the rest by ``more``."""
    max_document_bytes: Annotated[int, msgspec.Meta(ge=1)] = 4 * 1024 * 1024
    """A State, Activity Profile or Agent Profile document larger than this is a 413."""
    credential_cache_s: Annotated[float, msgspec.Meta(ge=0, le=300)] = 10.0
    """How long a process trusts a looked-up LRS credential: a revocation reaches other
    processes within this (the revoking process forgets the key at once)."""
