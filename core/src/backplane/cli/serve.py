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
def serve(host: str | None, port: int | None, workers: int | None) -> None:
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
        server_header=False,
    )
