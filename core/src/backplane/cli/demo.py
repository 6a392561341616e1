"""``backplane demo``: demo data for the quickstart."""

from __future__ import annotations

import asyncio

import click

from backplane.cli import _context


@click.group()
def demo() -> None:
    """Demo data."""


@demo.command()
def seed() -> None:
    """Add demo data once (first run only); later runs do nothing."""
    from backplane.demo import DEMO_OWNER, DEMO_TENANT, seed_demo_data

    settings = _context.settings()
    if not settings.demo_data:
        click.echo("demo data disabled (BACKPLANE_DEMO_DATA=false)")
        return
    reports = asyncio.run(seed_demo_data(_context.plugin_set()))
    if reports is None:
        click.echo(
            "demo data already present (credentials were printed at first start). New ones:\n"
            f"  backplane users set-password {DEMO_OWNER}\n"
            f"  backplane apikeys create --tenant {DEMO_TENANT} --name demo --role owner"
        )
        return
    click.echo("demo data seeded")
    for plugin, report in reports:
        if plugin == "core":
            click.echo(
                f"  tenant {report['tenant']}: log in as {report['login']} with password "
                f"{report['password']}\n  API key (shown once): {report['api_key']}"
            )
        elif isinstance(report, dict):
            for key, value in report.items():
                click.echo(f"  {plugin}: {key}: {value}")
