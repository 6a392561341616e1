"""``backplane keys``: the keyring that signs access tokens."""

from __future__ import annotations

import asyncio

import click

from backplane.cli import _context
from backplane.secret_key import secret_key


@click.group()
def keys() -> None:
    """Manage token signing keys."""


@keys.command()
def rotate() -> None:
    """Start signing with a new key; the previous one verifies until its tokens expire."""
    from backplane.db.engine import create_engine, create_sessionmaker
    from backplane.identity.keystore import rotate_keyring

    settings = _context.settings()

    async def run() -> list[tuple[str, bool]]:
        engine = create_engine(settings, purpose="maintenance")
        try:
            keyring = await rotate_keyring(
                create_sessionmaker(engine),
                secret_key(settings),
                settings.auth.access_ttl_s,
                settings.auth.leeway_s,
            )
        finally:
            await engine.dispose()
        active = keyring.active_key().kid
        return [(k.kid, k.kid == active) for k in keyring.keys]

    for kid, active in asyncio.run(run()):
        click.echo(f"{kid}  {'signing' if active else 'verifying until its tokens expire'}")
