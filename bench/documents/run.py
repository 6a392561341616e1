"""Documents benchmark: bulk PDF generation through the documents plugin against the typst
library called directly, and the latency of one document through the HTTP route.

Run by ``tox run -e bench-documents``, or with the Python of any environment where
``backplane-documents`` is installed: ``python bench/documents/run.py [--rows N] [--rounds N]
[--workers P] [--latency-requests N] [--no-record]``.

In a temporary data directory (SQLite, the documents plugin only) it migrates, seeds a tenant,
starts ``backplane serve`` (one process: the API and its embedded task worker) and creates the
demo invoice (typst) as a template. Then, interleaved for ``--rounds`` rounds:

- ``direct``: the same template and the same rows compiled by a reused ``typst.Compiler`` per
  process (what the plugin's engine does, same options) in a pool of ``--workers`` processes,
  warmed up, the rows split between them: the library with the parallelism the plugin's
  render pool has (``documents.render_workers``);
- ``plugin``: ``POST /api/documents/templates/{id}/jobs`` with the rows as JSON lines, timed
  until the job's ``documents.job_finished`` event arrives on the live stream: spooling,
  chunk tasks, sandboxed renders, metering, stored chunk files, outcomes with quality reports
  and the ZIP.

Documents per second are ``rows / seconds``; the goal (issue 21, acceptance 6) is a median
ratio plugin/direct of at least 0.8. Before timing, the plugin's ZIP is checked (every row a
PDF with the page count the library gives). Then ``--latency-requests`` sequential
``POST .../render`` (one stored, metered document each) give p50 and p99, beside the direct
compile's. The run is recorded in ``bench/RESULTS.md`` (a re-run of the same commit, machine
and options replaces its record); exit 1 on a missed goal.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import (  # noqa: E402
    HOST,
    BenchError,
    cpu_seconds,
    exit_on_sigterm,
    free_port,
    git_revision,
    machine,
    record,
    server,
)

GOAL_RATIO = 0.8
SLUG = "bench"


def invoice_row(number: int) -> dict[str, Any]:
    lines = [
        {"description": f"Item {k} of order {number}", "quantity": k + 1, "unit_price": 9.5 * k}
        for k in range(1 + number % 6)
    ]
    return {
        "number": f"INV-{number:06d}",
        "issued_on": "2026-12-05",
        "customer": f"Customer {number} & Co",
        "email": f"billing{number}@example.org",
        "currency": "EUR",
        "lines": lines,
    }


# -- the library, directly ----------------------------------------------------------------------
_SOURCE = b""
_ROOT = ""
_COMPILER: Any = None


def _start_worker(source: bytes) -> None:
    global _SOURCE, _ROOT, _COMPILER  # noqa: PLW0603 (per-process worker state)
    import typst

    _SOURCE, _ROOT = source, tempfile.mkdtemp(prefix="bench-typst-")
    # The library used at its best, as the plugin's render workers use it: one Compiler per
    # process, reused for every document (about 3x faster than ``typst.compile`` per call).
    _COMPILER = typst.Compiler(
        root=_ROOT, ignore_system_fonts=True, package_path=_ROOT, package_cache_path=_ROOT
    )


def compile_rows(rows: list[str]) -> list[int]:
    """Each row (a JSON string) compiled by the process's reused ``typst.Compiler``, as the
    plugin's engine calls it; sizes."""
    return [
        len(_COMPILER.compile(input=_SOURCE, format="pdf", sys_inputs={"data": row}))
        for row in rows
    ]


def direct_round(pool: ProcessPoolExecutor, rows: list[str], workers: int) -> float:
    share = [rows[i::workers] for i in range(workers)]
    started = time.perf_counter()
    sizes = [s for part in pool.map(compile_rows, share) for s in part]
    seconds = time.perf_counter() - started
    if len(sizes) != len(rows) or min(sizes) < 1000:
        raise BenchError("the library produced fewer or empty PDFs")
    return seconds


# -- the plugin ---------------------------------------------------------------------------------
def plugin_round(
    base: str, auth: dict[str, str], template_id: str, body: bytes, rows: int
) -> tuple[float, str]:
    """Seconds from the upload to the job's end, heard on the tenant's live stream (the
    ``documents.job_finished`` event) rather than by polling, which would take CPU from the
    server while it renders."""
    with httpx.stream("GET", f"{base}/api/events", headers=auth, timeout=300) as events:
        lines = events.iter_lines()
        next(lines)  # the stream is open (its first message carries only the position)
        started = time.perf_counter()
        answer = httpx.post(
            f"{base}/api/documents/templates/{template_id}/jobs",
            params={"format": "jsonl"},
            content=body,
            headers=auth,
            timeout=120,
        )
        if answer.status_code != 202:
            raise BenchError(f"starting the job answered {answer.status_code}: {answer.text}")
        job_id = answer.json()["id"]
        finished = False
        for line in lines:
            if line.startswith("event: "):
                finished = line == "event: documents.job_finished"
            elif finished and line.startswith("data: ") and job_id in line:
                break
        seconds = time.perf_counter() - started
    job = httpx.get(f"{base}/api/documents/jobs/{job_id}", headers=auth, timeout=30).json()
    if job["status"] != "succeeded" or job["progress"]["done"] != rows:
        raise BenchError(f"the job ended {job['status']}: {job}")
    return seconds, job_id


def check_zip(base: str, auth: dict[str, str], job_id: str, expected_pages: list[int]) -> None:
    from pypdf import PdfReader

    answer = httpx.get(f"{base}/api/documents/jobs/{job_id}/zip", headers=auth, timeout=120)
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    manifest = [json.loads(line) for line in archive.read("manifest.jsonl").splitlines()]
    if len(manifest) != len(expected_pages):
        raise BenchError(f"the ZIP accounts for {len(manifest)} rows, not {len(expected_pages)}")
    for line, pages in zip(manifest, expected_pages, strict=True):
        reader = PdfReader(io.BytesIO(archive.read(line["file"])))
        if len(reader.pages) != pages or line["pages"] != pages:
            raise BenchError(f"row {line['row']}: {len(reader.pages)} pages, expected {pages}")


def latency(base: str, auth: dict[str, str], template_id: str, count: int) -> list[float]:
    times = []
    with httpx.Client(timeout=60, headers=auth) as client:
        for i in range(count + 10):
            started = time.perf_counter()
            answer = client.post(
                f"{base}/api/documents/templates/{template_id}/render",
                json={"fields": invoice_row(i)},
            )
            elapsed = time.perf_counter() - started
            if answer.status_code != 201:
                raise BenchError(f"render answered {answer.status_code}: {answer.text}")
            if i >= 10:  # the first ones warm up
                times.append(elapsed)
    return times


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` alone (not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    from backplane_documents.jobs_settings import JobSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="rows per bulk job (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--workers", type=int, default=2, help="render processes, both sides (2)")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=JobSettings().chunk_rows,  # the plugin's default, measured as shipped
        help="documents.jobs.chunk_rows (the plugin's default)",
    )
    parser.add_argument("--latency-requests", type=int, default=200, help="single renders (200)")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    options = parser.parse_args(argv)
    exit_on_sigterm()
    from backplane_documents.demo import INVOICE_FIELDS, demo_source

    source = demo_source("invoice.typ")
    rows = [json.dumps(invoice_row(i)) for i in range(options.rows)]
    body = ("\n".join(rows) + "\n").encode()
    backplane = str(Path(sys.executable).with_name("backplane"))
    direct_s: list[float] = []
    plugin_s: list[float] = []
    direct_cpu: list[float] = []
    plugin_cpu: list[float] = []
    server_cpu: list[float] = []
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as temporary:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))} | {
            "BACKPLANE_DATA_DIR": str(Path(temporary) / "var"),
            "BACKPLANE_PLUGINS": "documents",
            "BACKPLANE_DEMO_DATA": "false",
            "BACKPLANE_PLUGIN__DOCUMENTS__RENDER_WORKERS": str(options.workers),
            "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__CHUNK_ROWS": str(options.chunk_rows),
            "BACKPLANE_PLUGIN__DOCUMENTS__JOBS__PARALLEL_CHUNKS": "2",
        }
        subprocess.run([backplane, "db", "upgrade"], env=env, check=True, capture_output=True)
        from backplane.loading import load_plugins
        from backplane.settings import load_settings
        from backplane.testing import seed_tenant

        auth = seed_tenant(load_plugins(load_settings(environ=env)), SLUG).headers
        port = free_port()
        base = f"http://{HOST}:{port}"
        with (
            server(  # the server's CPU includes its render workers' (its children)
                "backplane serve",
                [backplane, "serve", "--port", str(port), "--no-access-log"],
                env,
                ROOT,
                lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 200,
                [port],
            ) as serve,
            ProcessPoolExecutor(
                options.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(source.encode(),),
            ) as pool,
        ):
            created = httpx.post(
                f"{base}/api/documents/templates",
                json={"name": "invoice", "source": source, "fields": INVOICE_FIELDS},
                headers=auth,
                timeout=30,
            )
            if created.status_code != 201:
                raise BenchError(f"creating the template answered {created.status_code}")
            template_id = created.json()["id"]
            warm = rows[: options.workers * 4]
            direct_round(pool, warm, options.workers)
            _, job_id = plugin_round(base, auth, template_id, body, options.rows)
            check_zip(base, auth, job_id, [1] * options.rows)
            pool_pids = list(pool._processes)  # the pool's workers, started by the warm-up

            def pool_cpu() -> float:
                return sum(cpu_seconds(pid) for pid in pool_pids)

            for round_ in range(options.rounds):
                before = pool_cpu()
                direct_s.append(direct_round(pool, rows, options.workers))
                direct_cpu.append((pool_cpu() - before) / options.rows)
                before, before_own = cpu_seconds(serve.pid), own_cpu_seconds(serve.pid)
                plugin_s.append(plugin_round(base, auth, template_id, body, options.rows)[0])
                plugin_cpu.append((cpu_seconds(serve.pid) - before) / options.rows)
                server_cpu.append((own_cpu_seconds(serve.pid) - before_own) / options.rows)
                print(
                    f"round {round_ + 1}: direct {options.rows / direct_s[-1]:.1f} docs/s, "
                    f"plugin {options.rows / plugin_s[-1]:.1f} docs/s; CPU ms per document: "
                    f"direct {direct_cpu[-1] * 1000:.2f}, plugin {plugin_cpu[-1] * 1000:.2f} "
                    f"(server process {server_cpu[-1] * 1000:.2f})",
                    flush=True,
                )
            route = latency(base, auth, template_id, options.latency_requests)
            one = [direct_round(pool, rows[i : i + 1], 1) for i in range(50)]
    direct_rate = statistics.median(options.rows / s for s in direct_s)
    plugin_rate = statistics.median(options.rows / s for s in plugin_s)
    ratio = plugin_rate / direct_rate
    cpu_ratio = statistics.median(direct_cpu) / statistics.median(plugin_cpu)
    passed = ratio >= GOAL_RATIO
    verdict = "goal met" if passed else f"goal missed: plugin/direct {ratio:.2f} < {GOAL_RATIO}"
    facts = machine()
    revision = git_revision(["core", "plugins/documents", "bench/documents"])
    key = (
        f"{revision}; {facts['arch']}; {facts['cpus']}; {facts['cpu']}; rows {options.rows}; "
        f"workers {options.workers}"
    )
    ms = 1000.0
    lines = [
        f"## Documents benchmark (`bench/documents`) · {facts['date']} · {revision}",
        "",
        f"<!-- bench-documents-key: {key} -->",
        f"Bulk generation of {options.rows} invoices (the demo typst template, 1-6 line items, "
        "one A4 page each) through a bulk job of the documents plugin, against a reused "
        f"`typst.Compiler` called directly with the same options in {options.workers} processes; "
        "then single documents through `POST /api/documents/templates/{id}/render`; see "
        f"`bench/documents/run.py`. Goal (issue 21, acceptance 6): docs/s plugin/direct >= "
        f"{GOAL_RATIO}.",
        "",
        f"- machine: {facts['arch']}, {facts['cpus']} CPUs, {facts['cpu']}, {facts['memory']}, "
        f"Python {facts['python']}, kernel {facts['kernel']} (load average before recording: "
        f"{facts['load']}; the machine is shared with other work: expect noise)",
        f"- plugin: `backplane serve` (1 process, embedded task worker, SQLite), "
        f"documents.render_workers={options.workers}, jobs.chunk_rows={options.chunk_rows}, "
        "timed from the upload to the `documents.job_finished` live event (spool, chunk tasks, "
        "sandboxed renders, metering, "
        "stored chunk files, outcomes with quality reports, the ZIP); its ZIP checked once "
        "(every row a PDF, pages read back with pypdf)",
        f"- direct: a warmed-up pool of {options.workers} processes, each reusing one "
        "`typst.Compiler` (in memory, nothing stored)",
        f"- {options.rounds} interleaved rounds (direct, plugin); per-round docs/s: direct "
        f"{', '.join(f'{options.rows / s:.1f}' for s in direct_s)}; plugin "
        f"{', '.join(f'{options.rows / s:.1f}' for s in plugin_s)}",
        f"- ratio plugin/direct: **{ratio:.2f}** (goal >= {GOAL_RATIO}); verdict: {verdict}",
        f"- CPU per document (server process and its render workers; the pool's processes): "
        f"direct/plugin **{cpu_ratio:.2f}**, the ratio that does not depend on how a busy "
        "machine shares its cores between the processes of each side",
        "",
        "| measure | direct | plugin |",
        "|---|---:|---:|",
        f"| bulk docs/s (median of {options.rounds}) | {direct_rate:.1f} | {plugin_rate:.1f} |",
        f"| CPU ms per document (median) | {statistics.median(direct_cpu) * ms:.1f} | "
        f"{statistics.median(plugin_cpu) * ms:.1f} |",
        f"| of which the server process (the rest: its render workers) | | "
        f"{statistics.median(server_cpu) * ms:.2f} |",
        f"| one document, p50 ms ({len(route)} sequential route calls; direct: 50 compiles) | "
        f"{percentile(one, 0.5) * ms:.1f} | {percentile(route, 0.5) * ms:.1f} |",
        f"| one document, p99 ms | {percentile(one, 0.99) * ms:.1f} | "
        f"{percentile(route, 0.99) * ms:.1f} |",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not options.no_record:
        record(section, f"bench-documents-key: {key}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
