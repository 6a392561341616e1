"""``backplane marketplace close-period``: the operators' statement run for publishers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

from backplane import Kernel, pass_kernel

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])\Z")


@click.group("marketplace")
def marketplace_group() -> None:
    """Model marketplace: publishers' statements, federation."""


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


@marketplace_group.group("federation")
def federation_group() -> None:
    """This deployment's signed catalog, and subscriptions to other deployments' catalogs."""


@federation_group.command("key")
@pass_kernel
async def federation_key(kernel: Kernel) -> None:
    """Print this deployment's catalog public key (base64) and its fingerprint: give them to
    the operators of subscribing deployments through a channel they trust."""
    from backplane_marketplace.federation import catalog_key

    key = catalog_key(kernel)
    click.echo(f"public key:  {key.public_key}")
    click.echo(f"fingerprint: {key.fingerprint}")


@federation_group.command("subscribe")
@click.argument("url")
@click.option("--key", "public_key", required=True, help="The catalog public key, pinned.")
@pass_kernel
async def federation_subscribe(kernel: Kernel, url: str, public_key: str) -> None:
    """Subscribe to the catalog of the deployment at URL: fetched and verified with --key now,
    nothing stored if it does not verify."""
    import msgspec

    from backplane_marketplace.errors import MarketplaceError
    from backplane_marketplace.federation import subscribe, subscription_out
    from backplane_marketplace.federation_schemas import SubscriptionIn

    try:
        data = msgspec.convert({"url": url, "public_key": public_key}, SubscriptionIn)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from None
    async with kernel.all_tenants(f"marketplace federation subscribe {url}") as everyone:
        try:
            row = await subscribe(everyone.db, data, kernel.plugin_settings, None)
            out = await subscription_out(everyone.db, row)
        except MarketplaceError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"subscribed {out.id} {out.url}: {out.listings} listing(s)")


@federation_group.command("list")
@pass_kernel
async def federation_list(kernel: Kernel) -> None:
    """The subscriptions: id, URL, key fingerprint, listings, last refresh."""
    from sqlalchemy import select

    from backplane_marketplace.federation import subscription_out
    from backplane_marketplace.federation_models import Subscription

    async with kernel.all_tenants("marketplace federation list") as everyone:
        rows = list(await everyone.db.scalars(select(Subscription).order_by(Subscription.url)))
        outs = [await subscription_out(everyone.db, r) for r in rows]
    for out in outs:
        click.echo(
            f"{out.id} {out.url} key {out.key_fingerprint[:16]} "
            f"{out.listings} listing(s), refreshed {out.refreshed_at:%Y-%m-%d %H:%M:%S}"
        )


@federation_group.command("refresh")
@click.argument("subscription_id", type=click.UUID)
@pass_kernel
async def federation_refresh(kernel: Kernel, subscription_id: Any) -> None:
    """Fetch a subscription's catalog again (verified; an older one is refused)."""
    from backplane_marketplace.errors import MarketplaceError
    from backplane_marketplace.federation import refresh, subscription_out

    async with kernel.all_tenants(f"marketplace federation refresh {subscription_id}") as everyone:
        try:
            row = await refresh(everyone.db, subscription_id, kernel.plugin_settings)
            out = await subscription_out(everyone.db, row)
        except MarketplaceError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"refreshed {out.url}: {out.listings} listing(s)")


@federation_group.command("unsubscribe")
@click.argument("subscription_id", type=click.UUID)
@pass_kernel
async def federation_unsubscribe(kernel: Kernel, subscription_id: Any) -> None:
    """Forget a subscription and its listings (installs made from it stay)."""
    from backplane_marketplace.errors import MarketplaceError
    from backplane_marketplace.federation import unsubscribe

    async with kernel.all_tenants(f"marketplace federation unsubscribe {subscription_id}") as k:
        try:
            row = await unsubscribe(k.db, subscription_id)
        except MarketplaceError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"unsubscribed {row.url}")
