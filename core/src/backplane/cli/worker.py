"""``backplane worker``: dramatiq worker processes for RabbitMQ or Redis."""

from __future__ import annotations

import os
import sys

import click

from backplane.cli import _context


@click.command()
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: the number of cores).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="Threads per process (default: tasks.threads).",
)
@click.option("--queues", "queues", multiple=True, help="Only consume these queues.")
def worker(processes: int | None, threads: int | None, queues: tuple[str, ...]) -> None:
    """Run task workers (needs BACKPLANE_BROKER_URL; embedded mode runs inside serve)."""
    from backplane.tasks.broker import EMBEDDED, broker_kind

    settings = _context.settings()
    if broker_kind(settings) == EMBEDDED:
        raise click.UsageError(
            "no broker configured: set BACKPLANE_BROKER_URL to amqp://... or redis://... "
            "(without one, `backplane serve` runs tasks in process)"
        )
    _context.plugin_set()  # fail here, clearly, in strict mode
    _context.require_migrated()
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "backplane.tasks.entrypoint",
        "--processes",
        str(processes or os.cpu_count() or 1),
        "--threads",
        str(threads or settings.tasks.threads),
    ]
    if queues:
        args += ["--queues", *queues]
    os.execv(sys.executable, args)  # noqa: S606 - replace this process with dramatiq's CLI
