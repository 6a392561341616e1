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
    from backplane.demo import seed_demo_data

    settings = _context.settings()
    if not settings.demo_data:
        click.echo("demo data disabled (BACKPLANE_DEMO_DATA=false)")
        return
    seeded = asyncio.run(seed_demo_data(_context.plugin_set()))
    click.echo("demo data seeded" if seeded else "demo data already present")
