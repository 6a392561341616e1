"""Routing a request through an alias, and deciding whether a candidate version is promoted.

Pure functions, no database: what the resolution path, the alias routes and a trainer share.

**Sticky routing.** A request with a routing key (``parameters: {"routing_key": "user-42"}`` or
the ``X-Routing-Key`` header) lands in one of :data:`BUCKETS` buckets by a BLAKE2b hash of the
tenant, model, alias and key: the same on every process and after every restart (Python's
``hash()`` is salted per process, so it is not used). Buckets below ``split_percent`` percent go
to the split version. Raising the percentage only moves more buckets over: a caller already on
the split version stays there. Without a key a request is routed at random.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Mapping
from typing import Final

import msgspec

from backplane.inference import v2

BUCKETS: Final = 10_000
"""Routing granularity: 0.01 % of the traffic per bucket."""


class AliasTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where an alias sends requests: ``version``, except ``split_percent`` % to
    ``split_version`` (when there is one)."""

    version: str
    split_version: str | None = None
    split_percent: int = 0


def bucket(tenant_id: uuid.UUID, name: str, alias: str, routing_key: str) -> int:
    """The caller's bucket in ``[0, BUCKETS)``: stable across processes and restarts."""
    digest = hashlib.blake2b(
        routing_key.encode(), digest_size=8, key=f"{tenant_id}/{name}/{alias}".encode()[:64]
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def route(
    target: AliasTarget,
    *,
    tenant_id: uuid.UUID,
    name: str,
    alias: str,
    routing_key: str | None,
    rng: random.Random | None = None,
) -> str:
    """The version this request goes to: by its key's bucket, or at random without a key."""
    if target.split_version is None or target.split_percent <= 0:
        return target.version
    if routing_key is None:
        position = (rng or random).randrange(BUCKETS)  # a traffic split, not a secret
    else:
        position = bucket(tenant_id, name, alias, routing_key)
    return (
        target.split_version if position < target.split_percent * BUCKETS // 100 else target.version
    )


class PromotionDecision(msgspec.Struct, frozen=True, kw_only=True):
    promote: bool
    reason: str


def should_promote(
    candidate_metrics: Mapping[str, float],
    production_metrics: Mapping[str, float] | None,
    metric: str,
    higher_is_better: bool,
    margin: float,
) -> PromotionDecision:
    """Whether a candidate replaces production: its ``metric`` must beat production's by more
    than ``margin`` (absolute, in the metric's units) in the metric's better direction. With no
    production version (``production_metrics`` None) a candidate with a finite metric is
    promoted; a missing or non-finite metric, on either side, never promotes (it cannot be
    shown better)."""
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    candidate = candidate_metrics.get(metric)
    if candidate is None or not math.isfinite(candidate):
        return PromotionDecision(promote=False, reason=f"candidate has no finite {metric!r}")
    if production_metrics is None:
        return PromotionDecision(promote=True, reason="no production version yet")
    current = production_metrics.get(metric)
    if current is None or not math.isfinite(current):
        return PromotionDecision(
            promote=False, reason=f"production has no finite {metric!r} to compare with"
        )
    gain = candidate - current if higher_is_better else current - candidate
    if gain > margin:
        return PromotionDecision(
            promote=True, reason=f"{metric} {candidate:g} beats {current:g} by more than {margin:g}"
        )
    return PromotionDecision(
        promote=False,
        reason=f"{metric} {candidate:g} does not beat {current:g} by more than {margin:g}",
    )


ROUTING_KEY_HEADER: Final = "x-routing-key"


def routing_key(request: v2.InferRequest, headers: Mapping[str, str], max_chars: int) -> str | None:
    """The caller's routing key: ``parameters.routing_key`` of the V2 request, else the
    ``X-Routing-Key`` header; None without one. :class:`v2.V2Error` (400) when it is not text or
    longer than ``max_chars`` (``inference.max_routing_key_chars``)."""
    value: object = (request.parameters or {}).get("routing_key")
    if value is None:
        value = headers.get(ROUTING_KEY_HEADER)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise v2.V2Error(f"routing_key must be text of 1 to {max_chars} characters")
    return value
