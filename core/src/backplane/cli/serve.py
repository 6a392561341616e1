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
    import math

    import uvicorn

    settings = _context.settings()
    _context.plugin_set()  # fail here, with a clear message, in strict mode
    _context.require_migrated()
    host = host or settings.server.host
    port = port or settings.server.port
    _refuse_unusable_address(host, port)
    uvicorn.run(
        "backplane.app:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.server.workers,
        proxy_headers=False,
        access_log=settings.server.access_log if access_log is None else access_log,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.server.shutdown_timeout_s),
    )


def _refuse_unusable_address(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will, and let go: a port in use is one line naming the
    ways to choose another, not uvicorn's log of an ``OSError``. (Another process may still
    take the port in between; uvicorn then reports it its own way.)"""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is in use (another server?): choose another with "
                    "--port or BACKPLANE_SERVER__PORT"
                ) from None
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose the address "
                "with --host/--port or BACKPLANE_SERVER__HOST/BACKPLANE_SERVER__PORT"
            ) from None
