"""``backplane serve``."""

from __future__ import annotations

import click

from backplane.cli import _context


@click.command()
@click.option("--host", default=None, help="Interface to bind (default: server.host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: server.port, 8000)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: server.workers, 1).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log every request (default: server.access_log, on).",
)
def serve(host: str | None, port: int | None, workers: int | None, access_log: bool | None) -> None:
    """Serve the HTTP API (run `backplane db upgrade` first)."""
    import uvicorn

    settings = _context.settings()
    _context.plugin_set()  # fail here, with a clear message, in strict mode
    uvicorn.run(
        "backplane.app:create_app_from_environment",
        factory=True,
        host=host or settings.server.host,
        port=port or settings.server.port,
        workers=workers or settings.server.workers,
        proxy_headers=False,
        access_log=settings.server.access_log if access_log is None else access_log,
        server_header=False,
    )
