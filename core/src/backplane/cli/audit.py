"""``backplane audit``: check the audit trail's hash chains, export a tenant's trail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click

from backplane.cli import _context


@click.group()
def audit() -> None:
    """Verify and export the audit trail."""


@audit.command()
@click.option("--tenant", "slug", default=None, help="One tenant's chain (default: every tenant).")
def verify(slug: str | None) -> None:
    """Check every row of the audit trail against its hash chain.

    Exit status 1 naming each tenant's first broken row: edited (its hash does not match its
    content), deleted (a gap in the numbering, or rows missing at the end), or out of chain
    (reordered, replaced, or forged with a recomputed hash)."""
    from backplane.audit.verify import ChainReport, audited_tenants, verify_tenant
    from backplane.identity.tenants import IdentityError, tenant_by_slug

    async def work(rails: Any) -> list[tuple[str, ChainReport]]:
        reason = f"operator: audit verify {slug or 'every tenant'}"
        async with rails.database.maintenance(reason) as session:
            if slug is not None:
                tenants = [(await tenant_by_slug(session, slug)).id]
            else:
                tenants = await audited_tenants(session)
            slugs = await _slugs(session)
            reports = []
            for tenant_id in tenants:
                report = await verify_tenant(session, tenant_id)
                reports.append((slugs.get(tenant_id, str(tenant_id)), report))
            return reports

    reports = _context.with_rails(work, IdentityError)
    broken = [(name, r) for name, r in reports if r.broken is not None]
    for name, report in reports:
        if report.broken is None:
            click.echo(f"{name}: {report.rows} rows, chain intact")
    for name, report in broken:
        assert report.broken is not None
        click.echo(f"{name}: BROKEN ({report.broken.problem}): {report.broken.message}", err=True)
    if broken:
        raise SystemExit(1)
    if not reports:
        click.echo("no audit rows yet")


async def _slugs(session: Any) -> dict[Any, str]:
    from sqlalchemy import select

    from backplane.identity.models import Tenant

    return {t.id: t.slug for t in await session.execute(select(Tenant.id, Tenant.slug))}


@audit.command()
@click.option("--tenant", "slug", required=True, help="The tenant whose trail to export.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)
def export(slug: str, out: Path | None) -> None:
    """Write tenant SLUG's audit trail as JSON lines, oldest first (one row a line, with its
    sequence number and hashes, so the copy can be checked on its own)."""
    import msgspec

    from backplane.audit.routes import AuditEventOut
    from backplane.audit.verify import rows_of
    from backplane.identity.tenants import IdentityError, tenant_by_slug

    async def work(rails: Any) -> int:
        from sqlalchemy import func, select

        from backplane.audit.models import AuditEvent

        async with rails.database.maintenance(f"operator: audit export {slug}") as session:
            tenant = await tenant_by_slug(session, slug)
            total = await session.scalar(
                select(func.count()).where(AuditEvent.tenant_id == tenant.id)
            )
            stream: IO[bytes] = out.open("wb") if out else sys.stdout.buffer
            written = 0
            try:
                bar: Any = click.progressbar(
                    length=total or 0, label=f"exporting {slug}", file=sys.stderr
                )
                with bar:
                    async for rows in rows_of(session, tenant.id):
                        for row in rows:
                            line = msgspec.convert(row, AuditEventOut, from_attributes=True)
                            stream.write(msgspec.json.encode(line) + b"\n")
                        written += len(rows)
                        bar.update(len(rows))
            finally:
                if out:
                    stream.close()
                else:
                    stream.flush()
            return written

    written = _context.with_rails(work, IdentityError)
    click.echo(f"exported {written} audit rows of {slug}" + (f" to {out}" if out else ""), err=True)
