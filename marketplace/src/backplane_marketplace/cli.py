"""``backplane marketplace close-period``: the operators' statement run for publishers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import click

from backplane import Kernel, pass_kernel

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])\Z")


@click.group("marketplace")
def marketplace_group() -> None:
    """Model marketplace: publishers' statements."""


def period_of(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The calendar month ``YYYY-MM`` (the billing period), the previous one when None."""
    if text is None:
        year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    else:
        match = PERIOD.match(text)
        if match is None:
            raise click.BadParameter("expected YYYY-MM", param_hint="--period")
        year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@marketplace_group.command("close-period")
@click.option("--period", default=None, help="YYYY-MM (default: the previous month).")
@click.option(
    "--include-running",
    is_flag=True,
    help="Allow the period still running (tests and demos: its invoices closed early).",
)
@pass_kernel
async def close_period(kernel: Kernel, period: str | None, include_running: bool) -> None:
    """Close a billing period into publishers' statements (gross, platform share, net).

    Run it after ``backplane billing close-period`` for the same month: the statements sum the
    marketplace charges of the consumers' closed invoices. Idempotent per publisher."""
    from backplane_marketplace.statements import close_statements

    now = datetime.now(UTC)
    start, end = period_of(period, now)
    if end > now and not include_running:
        raise click.BadParameter(f"{start:%Y-%m} has not ended yet", param_hint="--period")
    settings = kernel.plugin_settings
    async with kernel.all_tenants(f"marketplace close-period {start:%Y-%m}") as everyone:
        try:
            made = await close_statements(
                everyone.db,
                start,
                end,
                settings.platform_share_percent,
                settings.payout_provider,
            )
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        summary = [(s.currency, s.gross, s.platform_share, s.net) for s in made]
    for currency, gross, share, net in summary:
        click.echo(f"{start:%Y-%m} {currency}: gross {gross}, platform share {share}, net {net}")
    click.echo(f"{start:%Y-%m}: {len(summary)} statement(s)")
