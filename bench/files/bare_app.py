"""The baseline for ``bench/files``: Litestar's own ``File`` response serving one file.

No authentication, no database, no ranges: ``GET /file`` answers ``File(path)`` for the path in
``BENCH_FILES_PATH`` (the very object the Backplane route serves, in the data directory).
Served by ``bench/files/run.py`` with
``uvicorn bare_app:create_app --factory --log-level warning --no-access-log``.
"""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar, get
from litestar.response import File


def create_app() -> Litestar:
    path = Path(os.environ["BENCH_FILES_PATH"])

    @get("/file")
    async def serve_file() -> File:
        return File(path=path, media_type="application/octet-stream")

    @get("/health")
    async def health() -> str:
        return "ok"

    return Litestar(route_handlers=[serve_file, health], debug=False)
