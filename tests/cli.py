"""Run the installed ``backplane`` command in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BACKPLANE = str(Path(sys.executable).with_name("backplane"))


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The current environment without any BACKPLANE_* or OTEL_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BACKPLANE, *args],
        env=clean_environ(env),
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        timeout=timeout,
        check=False,
    )
