"""The plugin's settings: ``[plugins.marketplace]`` in the TOML file or
``BACKPLANE_PLUGIN__MARKETPLACE__<FIELD>`` variables, validated when the kernel starts."""

from __future__ import annotations

from typing import Annotated

import msgspec


class MarketplaceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of publishers and their keys; a breach is a clear 4xx naming the setting."""

    max_active_keys: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    """Signing keys a publisher may have active at once (rotation keeps the old one active
    until it is revoked, so that versions signed with it still verify)."""
    max_examples: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    """Example requests a version may declare (each is run and compared on upload)."""
    latency_runs: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    """Runs of the examples (round robin) that the measured p50/p99 latency is taken over."""
    max_unit_price: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 100_000
    """Highest price a publisher may ask per request or per row, in minor units of the
    deployment's currency (``billing.currency``): a higher one is refused with 422."""
    platform_share_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20
    """The platform's share of what consumers pay for a publisher's listings (statements)."""
    follow_upgrade_delay_s: Annotated[int, msgspec.Meta(ge=0, le=365 * 86_400)] = 7 * 86_400
    """How long after a following install is told of a newly approved version it is moved
    there (unless its tenant accepts sooner); 0 moves it at the next check."""
    payout_provider: str = "ledger"
    """Who is handed each closed statement (``register_payout_provider``); ``ledger`` books a
    payout ledger row of the net owed and pays nothing itself."""
    federation_name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    """The name this deployment gives itself in its signed catalog (shown to subscribers)."""
    federation_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """Longest a fetch from a subscribed deployment (its catalog, or one artifact) may take,
    all of it: connecting, waiting and reading (a slow trickle is cut off too)."""
    federation_max_catalog_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 8 << 20
    """Largest catalog document accepted from a subscribed deployment (refused past it)."""
    federation_max_artifact_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 40)] = 512 << 20
    """Largest artifact fetched from a subscribed deployment (the kernel's upload limit
    ``inference.max_upload_bytes`` applies too)."""
    federation_max_listings: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    """Most listings this deployment's catalog serves, and accepts from a subscribed one."""
