"""The ``backplane`` command.

Start-up must stay fast (``backplane --help`` under half a second), so this module imports only
click; each subcommand group lives in its own module, imported when it is invoked, and plugin
commands are added through the ``register_commands`` hook when the command list is needed.
"""

from __future__ import annotations

import importlib

import click

from backplane import __version__

_KERNEL_COMMANDS = {
    "serve": "backplane.cli.serve:serve",
    "db": "backplane.cli.db:db",
    "plugins": "backplane.cli.plugins:plugins",
    "plugin": "backplane.cli.plugin_new:plugin",
    "demo": "backplane.cli.demo:demo",
    "tenants": "backplane.cli.tenants:tenants",
    "users": "backplane.cli.users:users",
    "apikeys": "backplane.cli.apikeys:apikeys",
    "keys": "backplane.cli.keys:keys",
    "tasks": "backplane.cli.tasks:tasks",
    "worker": "backplane.cli.worker:worker",
    "quotas": "backplane.cli.quotas:quotas",
    "plans": "backplane.cli.plans:plans",
    "subscriptions": "backplane.cli.subscriptions:subscriptions",
    "billing": "backplane.cli.billing:billing",
    "models": "backplane.cli.models:models",
    "audit": "backplane.cli.audit:audit",
    "mail": "backplane.cli.mail:mail",
    "operators": "backplane.cli.operators:operators",
}


class BackplaneGroup(click.Group):
    """A group that imports kernel subcommands lazily and asks plugins for theirs once."""

    _plugin_commands_loaded = False

    def reset(self) -> None:
        """Forget the settings, plugins and plugin commands loaded so far, so that the next
        invocation in this process reads its environment again, as a new process would (the
        tests run many invocations in one process through click's runner)."""
        from backplane.cli import _context

        _context.settings.cache_clear()
        _context.plugin_set.cache_clear()
        self.commands.clear()
        self._plugin_commands_loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        from backplane.cli._context import plugin_set_or_none

        plugins = plugin_set_or_none()
        if plugins is not None:
            plugins.call("register_commands", cli=self)

    def invoke(self, ctx: click.Context) -> object:
        """Run the subcommand; a database it cannot use (not migrated, unreachable) is one line
        of advice and exit status 1, for every command alike (see :mod:`backplane.cli._database`).
        """
        from backplane.cli import _context, _database

        try:
            settings = _context.settings()
        except click.ClickException:
            settings = None  # the command reports it, if it needs settings at all
        with _database.reported(settings):
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return sorted(set(super().list_commands(ctx)) | set(_KERNEL_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _KERNEL_COMMANDS.get(cmd_name)
        if target is not None:
            module, _, attr = target.partition(":")
            kernel_command: click.Command = getattr(importlib.import_module(module), attr)
            return kernel_command
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command


@click.group(cls=BackplaneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="backplane")
def main() -> None:
    """Backplane: a self-hostable platform core for AI products.

    Settings come from BACKPLANE_* environment variables and the optional TOML file named by
    BACKPLANE_CONFIG (see the README).
    """
    _configure_logging()


def _configure_logging() -> None:
    """Warnings (such as skipped plugins) and alembic's progress lines go to stderr."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
