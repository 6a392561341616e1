"""``backplane tenants``: operator commands for tenants and their plugins."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from backplane.cli import _context


@click.group()
def tenants() -> None:
    """Create and inspect tenants."""


@tenants.command()
@click.argument("slug")
@click.option("--owner-email", required=True, help="Email of the owner (created if new).")
@click.option("--name", default=None, help="Display name (default: the slug).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def create(slug: str, owner_email: str, name: str | None, as_json: bool) -> None:
    """Create tenant SLUG with its owner, and print a one-time owner API key."""
    from backplane.identity.provision import provision_tenant
    from backplane.secret_key import secret_key

    async def work(session: Any, kernel: Any) -> dict[str, str]:
        made = await provision_tenant(
            session,
            kernel,
            server_secret=secret_key(_context.settings()),
            slug=slug,
            owner_email=owner_email,
            name=name,
            key_name="created with the tenant",
        )
        return {
            "tenant_id": str(made.tenant.id),
            "slug": made.tenant.slug,
            "owner_user_id": str(made.owner.id),
            "owner_email": made.owner.email,
            "api_key": made.api_key.key,
            "api_key_id": made.api_key.id,
        }

    result = _context.operate(f"operator: tenants create {slug}", work)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"created tenant {result['slug']} ({result['tenant_id']}), "
            f"owner {result['owner_email']} ({result['owner_user_id']})\n"
            f"owner API key (shown once; only its hash is stored): {result['api_key']}"
        )


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_tenants(as_json: bool) -> None:
    """List tenants."""
    from sqlalchemy import select

    from backplane.identity.models import Tenant

    async def work(session: Any) -> list[dict[str, str]]:
        rows = await session.scalars(select(Tenant).order_by(Tenant.slug))
        return [{"tenant_id": str(t.id), "slug": t.slug, "name": t.name} for t in rows]

    rows = _context.admin("operator: tenants list", work)
    _context.echo_rows(rows, as_json, lambda r: f"{r['slug']:<30} {r['tenant_id']}  {r['name']}")


@tenants.command("plugin")
@click.argument("slug")
@click.argument("plugin")
@click.argument("state", type=click.Choice(["on", "off"]))
def plugin_switch(slug: str, plugin: str, state: str) -> None:
    """Turn PLUGIN on or off for tenant SLUG."""
    from backplane.identity.tenants import set_plugin_enabled, tenant_by_slug

    async def work(session: Any, kernel: Any) -> None:
        tenant = await tenant_by_slug(session, slug)
        await set_plugin_enabled(session, kernel, tenant, plugin, state == "on")

    _context.operate(f"operator: tenants plugin {slug} {plugin} {state}", work)
    click.echo(f"plugin {plugin} is {state} for tenant {slug}")


@tenants.command("member")
@click.argument("slug")
@click.argument("email")
@click.argument("role", type=click.Choice(["owner", "admin", "member", "viewer", "remove"]))
def member(slug: str, email: str, role: str) -> None:
    """Add EMAIL to tenant SLUG with ROLE, change their role, or `remove` them."""
    from backplane.identity.tenants import get_or_create_user, set_member_role, tenant_by_slug

    async def work(session: Any) -> None:
        tenant = await tenant_by_slug(session, slug)
        user = await get_or_create_user(session, email)
        await set_member_role(session, tenant.id, user.id, None if role == "remove" else role)

    _context.admin(f"operator: tenants member {slug} {email} {role}", work)
    click.echo(f"{email}: {'removed from' if role == 'remove' else role + ' of'} tenant {slug}")


@tenants.command("export")
@click.argument("slug")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The zip file to write (replaced if it exists).",
)
def export_tenant(slug: str, out: Path) -> None:
    """Export every plugin's rows and files of tenant SLUG to a zip, with a manifest."""
    from backplane.kernel import Kernel, UnknownTenantError
    from backplane.privacy.tenants import export_tenant as export

    with contextlib.ExitStack() as stack:
        progress = _Progress(stack, f"exporting {slug}")

        async def work(rails: Any) -> dict[str, Any]:
            return await export(
                Kernel(rails), slug, out, on_start=progress.start, on_rows=progress.rows
            )

        manifest = _context.with_rails(work, UnknownTenantError)
    tables = manifest["tables"]
    rows = sum(t["rows"] for t in tables.values())
    click.echo(
        f"exported tenant {slug}: {rows} rows in {len(tables)} tables, "
        f"{len(manifest['files'])} files, to {out}"
    )
    if manifest["missing"]:
        lines = "\n".join(f"  {name}: {why}" for name, why in manifest["missing"].items())
        raise click.ClickException(
            f"the export is incomplete (a plugin's export_tenant_data left rows out):\n{lines}"
        )


@tenants.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts, CI).")
def delete_tenant(slug: str, yes: bool) -> None:
    """Delete tenant SLUG and everything it owns, in every plugin, files included."""
    from backplane.kernel import Kernel, UnknownTenantError
    from backplane.privacy.tenants import delete_tenant as delete

    if not yes:
        if not _interactive():
            raise click.ClickException(
                f"refusing to delete tenant {slug} without confirmation: stdin is not a "
                "terminal, so pass --yes"
            )
        typed = click.prompt(
            f"This deletes tenant {slug} and all its data, in every plugin, for good.\n"
            "Type the tenant's slug to confirm",
            default="",
            show_default=False,
        )
        if typed != slug:
            raise click.ClickException("not confirmed: nothing was deleted")

    async def work(rails: Any) -> dict[str, Any]:
        return await delete(Kernel(rails), slug)

    result = _context.with_rails(work, UnknownTenantError)
    rows = sum(result["rows"].values())
    click.echo(f"deleted tenant {slug}: {rows} rows")
    for problem in result["problems"]:
        click.echo(f"warning: {problem}", err=True)


class _Progress:
    """A progress bar on stderr over the rows to export, opened once their count is known."""

    def __init__(self, stack: contextlib.ExitStack, label: str) -> None:
        self._stack = stack
        self._label = label
        self._bar: Any = None

    def start(self, total: int) -> None:
        bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
        self._bar = self._stack.enter_context(bar)

    def rows(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)


def _interactive() -> bool:
    """Whether someone can answer a prompt (CI and pipes cannot: no terminal on stdin)."""
    return sys.stdin.isatty()
