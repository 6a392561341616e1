"""Start-up benchmark: ``backplane --help`` and ``create_app`` with every installed plugin.

Run by ``tox run -e bench`` (``make bench``), or directly with the Python of any environment
where ``backplane`` is installed: ``python bench/startup/run.py [--runs N] [--no-record]``.

Measures, each as a fresh subprocess (2 warm-ups, then N timed runs, median and p90):

- ``backplane --help``: process wall time;
- ``create_app``: ``python -c`` importing ``backplane.app`` and calling
  ``create_app(load_settings())``, timed inside the child with ``time.perf_counter()`` around the
  import and the call, and as the whole process's wall time.

Goals: ``--help`` median < 0.5 s; ``create_app`` median < 1.5 s (judged on the in-process time;
the process wall time is reported next to it). Prints a markdown table and the top importers of
``backplane --help`` (``python -X importtime``), records the run in ``bench/RESULTS.md``
(replacing an earlier record of the same commit on the same machine) and exits 1 if a goal is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
WARMUPS = 2
HELP_GOAL_S = 0.5
CREATE_APP_GOAL_S = 1.5
RUN_TIMEOUT_S = 60
T = TypeVar("T")

CREATE_APP_CHILD = """
import time
_t0 = time.perf_counter()
from backplane.app import create_app
from backplane.settings import load_settings
app = create_app(load_settings())
_elapsed = time.perf_counter() - _t0
import json, sys
from backplane.state import RAILS
records = app.state[RAILS].plugins.records
loaded = sorted(
    name for name, record in records.items()
    if getattr(record.status, "value", record.status) == "loaded"
)
sys.stdout.write(json.dumps({"elapsed": _elapsed, "loaded": loaded}) + "\\n")
"""


@dataclass
class Series:
    name: str
    samples: list[float]
    goal: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=10, method="inclusive")[8]

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.median < self.goal


def clean_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without Backplane settings or telemetry; a temp data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env["BACKPLANE_DATA_DIR"] = str(data_dir)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's start-up reads cached bytecode
    return env


def run_checked(
    args: Sequence[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(
            f"bench: {' '.join(args)} failed with exit code {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def timed(runs: int, one: Callable[[], T], label: str) -> list[T]:
    print(f"bench: {label}: {WARMUPS} warm-ups + {runs} runs", flush=True)
    for _ in range(WARMUPS):
        one()
    return [one() for _ in range(runs)]


def bench_help(backplane: str, runs: int, env: dict[str, str], cwd: Path) -> Series:
    def one() -> float:
        start = time.perf_counter()
        run_checked([backplane, "--help"], env, cwd)
        return time.perf_counter() - start

    samples = timed(runs, one, "backplane --help")
    return Series("`backplane --help` (process wall)", samples, HELP_GOAL_S)


def bench_create_app(runs: int, env: dict[str, str], cwd: Path) -> tuple[Series, Series, list[str]]:
    loaded: list[str] = []

    def one() -> tuple[float, float]:
        start = time.perf_counter()
        result = run_checked([sys.executable, "-c", CREATE_APP_CHILD], env, cwd)
        wall = time.perf_counter() - start
        report = json.loads(result.stdout.strip().splitlines()[-1])
        loaded[:] = report["loaded"]
        return float(report["elapsed"]), wall

    samples = timed(runs, one, "create_app")
    inside = [s[0] for s in samples]
    wall = [s[1] for s in samples]
    return (
        Series("`create_app` (import + call, in process)", inside, CREATE_APP_GOAL_S),
        Series("`create_app` (process wall)", wall),
        loaded,
    )


def import_time_top(backplane: str, env: dict[str, str], cwd: Path, top: int = 10) -> list[str]:
    """The modules with the largest cumulative import time under ``backplane --help``."""
    result = run_checked([sys.executable, "-X", "importtime", backplane, "--help"], env, cwd)
    rows: list[tuple[int, int, str]] = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((int(match.group(2)), int(match.group(1)), match.group(4)))
    rows.sort(reverse=True)
    lines = ["| cumulative ms | self ms | module |", "|---:|---:|---|"]
    lines += [f"| {c / 1000:.1f} | {s / 1000:.1f} | `{name}` |" for c, s, name in rows[:top]]
    return lines


def command_output(args: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": command_output(["date", "-u"]),
        "arch": command_output(["uname", "-m"]),
        "cpus": command_output(["nproc"]),
        "cpu": cpu,
        "python": sys.version.split()[0],
    }


def git_revision() -> str:
    sha = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(
        [
            "git",
            "-C",
            str(ROOT),
            "status",
            "--porcelain",
            "--",
            "core",
            "plugins",
            "marketplace",
            "contrib",
            "tests/sample_plugins",
        ]
    )
    return f"{sha}{' + uncommitted changes' if dirty else ''}"


def table(series: list[Series], runs: int) -> list[str]:
    lines = [
        f"| measure (N={runs}, {WARMUPS} warm-ups) | median s | p90 s | goal | result |",
        "|---|---:|---:|---:|---|",
    ]
    for s in series:
        goal = f"< {s.goal:.1f} s" if s.goal is not None else "-"
        verdict = {True: "pass", False: "**FAIL**", None: "-"}[s.passed]
        lines.append(f"| {s.name} | {s.median:.3f} | {s.p90:.3f} | {goal} | {verdict} |")
    return lines


def record(section: str, key: str) -> None:
    """Add the run to RESULTS.md, replacing an earlier one with the same key."""
    marker = f"<!-- bench-key: {key} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Start-up benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", text)
    head, runs = parts[0], parts[1:]
    runs = [r.rstrip() for r in runs if marker not in r]
    runs.append(section.rstrip())
    RESULTS.write_text("\n\n".join([head.rstrip(), *runs]) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per measure (15)")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")

    backplane = shutil.which("backplane", path=str(Path(sys.executable).parent)) or shutil.which(
        "backplane"
    )
    if backplane is None:
        sys.exit("bench: no `backplane` command next to this Python or on PATH")

    with tempfile.TemporaryDirectory(prefix="backplane-bench-") as tmp:
        work = Path(tmp)
        env = clean_env(work / "data")
        print(f"bench: {backplane} with {sys.executable}", flush=True)
        help_series = bench_help(backplane, options.runs, env, work)
        inside, wall, loaded = bench_create_app(options.runs, env, work)
        importers = import_time_top(backplane, env, work)

    series = [help_series, inside, wall]
    info = machine()
    revision = git_revision()
    rows = table(series, options.runs)
    failed = [s.name for s in series if s.passed is False]
    verdict = "all goals met" if not failed else "goal missed: " + ", ".join(failed)

    print()
    print("\n".join(rows))
    print()
    print(f"plugins loaded by create_app: {', '.join(loaded) or '(none)'}")
    print(
        f"{info['date']} · {info['arch']} · {info['cpus']} CPUs · {info['cpu']} · "
        f"Python {info['python']} · {revision}"
    )
    print()
    print("Top importers of `backplane --help` (python -X importtime, cumulative):")
    print()
    print("\n".join(importers))
    print()
    print(f"bench: {verdict}")

    if not options.no_record:
        key = f"{revision}; {info['arch']}; {info['cpus']}; {info['cpu']}; {info['python']}"
        section = "\n".join(
            [
                f"## {info['date']} · {revision}",
                "",
                f"<!-- bench-key: {key} -->",
                f"- machine: {info['arch']}, {info['cpus']} CPUs, {info['cpu']}, "
                f"Python {info['python']}",
                f"- plugins loaded by `create_app`: {', '.join(loaded) or '(none)'}",
                f"- verdict: {verdict}",
                "",
                *rows,
            ]
        )
        record(section, key)
        print(f"bench: recorded in {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
