"""Deprecating a version as of a date.

The publisher marks one of its approved versions deprecated from an instant (now, or a date to
come) with a note for consumers. From that instant the version takes no new installs (naming
it: 409; an install that names no version gets the latest approved version that is not
deprecated). Installs made before keep working after the date — a consumer's integration is
never broken by the publisher's calendar — and show the date and the note (``GET
/api/marketplace/installs``: ``deprecated_at``, ``notice``) from the moment it is announced.
The date may be changed or withdrawn until it has passed; after that it is final.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import ListingVersion


def aware(moment: datetime) -> datetime:
    """``moment`` with a time zone (SQLite gives back naive UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def deprecated_now(row: ListingVersion, now: datetime | None = None) -> bool:
    return row.deprecated_at is not None and aware(row.deprecated_at) <= (now or datetime.now(UTC))


def notice_for(row: ListingVersion, now: datetime | None = None) -> str | None:
    """What an install of ``row`` should tell its tenant, or None."""
    if row.deprecated_at is None:
        return None
    when = aware(row.deprecated_at)
    tense = "is deprecated since" if deprecated_now(row, now) else "will be deprecated on"
    text = f"version {row.version} {tense} {when.isoformat()}: calls keep working"
    return f"{text}. {row.deprecation_note}" if row.deprecation_note else text


def deprecate(row: ListingVersion, as_of: datetime | None, note: str) -> None:
    """Set (or, with ``as_of`` None, withdraw) the deprecation of an approved version."""
    if row.state != "approved":
        raise MarketplaceError(
            f"the version is {row.state}: only approved ones are deprecated", 409
        )
    if deprecated_now(row):
        raise MarketplaceError(
            f"version {row.version} is deprecated since "
            f"{aware(row.deprecated_at).isoformat()}: that is final",  # type: ignore[arg-type]
            409,
        )
    if as_of is not None and as_of.tzinfo is None:
        raise MarketplaceError("as_of needs a time zone (e.g. 2027-01-31T00:00:00Z)", 422)
    row.deprecated_at = as_of.astimezone(UTC) if as_of is not None else None
    row.deprecation_note = note if as_of is not None else ""
