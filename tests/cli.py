"""Run the ``backplane`` command with a controlled environment: in process, or as a real process.

:func:`run_cli` invokes ``backplane.cli:main`` through click's runner, as the operator's shell
would but without starting an interpreter (a process costs about a second of imports per call).
Use :func:`run_cli_process` only where a separate process is the point: ``serve``, ``worker``,
a kill -9, a real exit status or start-up time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from backplane.cli import main

BACKPLANE = str(Path(sys.executable).with_name("backplane"))
OWN_PREFIXES = ("BACKPLANE_", "OTEL_")
"""Variables the command reads: exactly those the test passes are set, as in a clean shell."""


@dataclass(frozen=True)
class CliResult:
    """What the shell sees of one command: exit status and the two output streams."""

    returncode: int
    stdout: str
    stderr: str


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The current environment without any BACKPLANE_* or OTEL_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> CliResult:
    """``backplane *args`` in this process, with exactly ``env`` as its BACKPLANE_*/OTEL_*
    variables and ``stdin`` as its input.

    Each call starts as a new process would: the settings and plugins of the previous call are
    forgotten, and logging is configured by the command itself, onto this call's stderr. An
    uncaught exception becomes exit status 1 with its traceback on stderr, as Python prints it.
    """
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith(OWN_PREFIXES)}
    overrides.update(env)
    main.reset()
    with _unconfigured_logging():
        result = CliRunner().invoke(
            main, list(args), input=stdin or "", env=overrides, prog_name="backplane"
        )
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return CliResult(result.exit_code, result.stdout, stderr)


@contextmanager
def _unconfigured_logging() -> Iterator[None]:
    """The root logger as a new process has it (no handlers), so that the command's own
    ``logging.basicConfig`` takes effect; pytest's handlers come back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_cli_process(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``backplane *args`` as a real process (see the module docstring for when)."""
    return subprocess.run(
        [BACKPLANE, *args],
        env=clean_environ(env),
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        timeout=timeout,
        check=False,
    )
