"""The plugin's settings: ``[plugins.marketing]`` in the TOML file or
``BACKPLANE_PLUGIN__MARKETING__<FIELD>`` variables, validated when the kernel starts."""

from __future__ import annotations

from typing import Annotated

import msgspec

MIB = 1024 * 1024


class MarketingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of contacts, imports and segments; every breach is a clear 4xx (or an import's
    per-row error) naming the setting."""

    max_attributes: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    """Attribute definitions a tenant may have."""
    max_attribute_chars: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 2000
    """Longest string value of an attribute (and of each item of a list attribute)."""
    max_tags_per_contact: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """Tags one contact may carry."""
    max_import_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 2048 * MIB
    """Largest import file (streamed to the files service, never held in memory)."""
    max_record_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * MIB)] = 1 * MIB
    """Longest CSV record or JSON line: past it (an unclosed quote, say) the row is reported
    and the import goes on at the next line."""
    import_batch_rows: Annotated[int, msgspec.Meta(ge=1, le=2000)] = 1000
    """Rows upserted per statement on SQLite (at most 2,000: the bound parameters of one
    statement)."""
    import_copy_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    """Rows per ``COPY`` into the staging table and upsert from it on PostgreSQL (no bound
    parameters; each batch is written while the next is read, so a chunk of
    ``import_chunk_rows`` is best a few batches)."""
    import_chunk_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20_000
    """Rows one task run imports before it commits its progress and hands on to the next run:
    a killed worker redoes at most this many rows."""
    max_reported_errors: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    """Bad rows an import or dry run reports one by one (the count goes on past it)."""
    preview_rows: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    """Rows an import preview shows."""
    max_segment_depth: Annotated[int, msgspec.Meta(ge=1, le=64)] = 10
    """Nesting depth of a segment filter."""
    max_segment_nodes: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    """Conditions in one segment filter."""
    max_template_chars: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 200_000
    """Longest subject, HTML or text part of a campaign template."""
    max_rendered_chars: Annotated[int, msgspec.Meta(ge=100, le=10_000_000)] = 1_000_000
    """Longest output of one rendered part: a template looping past it is refused."""
    send_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Messages one send task run queues (one transaction) before handing on to the next."""
    recipients_batch: Annotated[int, msgspec.Meta(ge=1, le=50_000)] = 5000
    """Recipient rows (one per contact of the segment) one send task run makes."""
    send_rate_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 6000
    """Campaign messages a tenant queues per minute, over all its campaigns (the kernel's
    ``mail.max_per_minute`` paces the delivery again)."""
    bot_click_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    """Clicks and opens this soon after the message was queued are a link scanner's: the
    redirect works but nothing is counted."""
    bot_user_agents: tuple[str, ...] = (
        "bot",
        "spider",
        "crawler",
        "scanner",
        "barracuda",
        "mimecast",
        "proofpoint",
        "safelinks",
        "urldefense",
        "python-requests",
        "curl/",
    )
    """Substrings (case-insensitive) of User-Agents whose clicks are not counted."""
    max_report_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * MIB)] = 1 * MIB
    """Largest bounce or complaint message ``bounces/dsn`` takes."""
    automation_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    """Automation runs one advance task takes (one transaction) before handing on."""
    max_automation_steps: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    """Steps one automation may have."""
    form_confirm_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 30)] = 72
    """How long a form's confirmation link works."""
    form_keep_expired_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 7
    """A sign-up never confirmed (an address someone typed, with what they entered) is deleted
    by a daily task this many days after its link expired: kept that long only so that a late
    click is told the link expired (410) rather than that it never existed (404)."""
    form_submissions_per_ip_per_hour: Annotated[int, msgspec.Meta(ge=1)] = 20
    """Submissions of a tenant's forms one client address may make per hour (beyond: 429)."""
    form_confirmations_per_address_per_day: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Confirmation mails one e-mail address may be sent per day, over the tenant's forms (so a
    form cannot be used to flood someone's inbox)."""
    form_submissions_per_tenant_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 120
    """Submissions of all a tenant's forms per minute, from every address together."""
