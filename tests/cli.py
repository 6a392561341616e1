"""Run the ``backplane`` command with a controlled environment: in process, or as a real process.

:func:`run_cli` invokes ``backplane.cli:main`` through click's runner, as the operator's shell
would but without starting an interpreter (a process costs about a second of imports per call).
Real processes (:func:`run_cli_process`, :func:`process`, :func:`serving`) only where a separate
process is the point: ``serve``, ``worker``, a kill -9, a real exit status or start-up time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from click.testing import CliRunner

from backplane.cli import main
from tests.waiting import wait_for

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
    variables and ``stdin`` as its input. From synchronous tests: commands run event loops.

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` as a process group of its own (a worker's children too), output appended to
    ``log``; terminated (killed if it does not stop) when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            env=clean_environ(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                kill_9(proc)


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group: a crash, with no chance to clean up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@dataclass(frozen=True)
class Server:
    base: str
    """``http://127.0.0.1:<port>``"""
    process: subprocess.Popen[bytes]


@contextmanager
def serving(
    env: dict[str, str],
    log: Path,
    *,
    port: int | None = None,
    ready: str = "/health/ready",
    timeout: float = 60,
) -> Iterator[Server]:
    """``backplane serve`` on ``port`` (a free one by default), yielded once ``ready`` answers
    200; a server that exits or is not ready in time fails the test with its log's tail."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    args = [BACKPLANE, "serve", "--port", str(port), "--no-access-log"]
    with process(args, env, log) as proc:

        def answers() -> bool:
            assert proc.poll() is None, f"the server exited with status {proc.returncode}"
            return httpx.get(f"{base}{ready}", timeout=2).status_code == 200

        try:
            wait_for(
                answers,
                message=f"{ready} to answer 200",
                timeout=timeout,
                interval=0.2,
                retry_on=(httpx.TransportError,),
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n-- server log:\n{log_tail(log)}") from None
        yield Server(base, proc)


def log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])
