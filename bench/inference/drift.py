"""Drift sampling's cost on the V2 hot path (issue 20, acceptance 5): throughput with
``inference.drift_sample_rate`` at its default against sampling off, in one run.

Run by ``tox run -e bench-inference-drift`` (or the Python of any environment with
``backplane-core``: ``python bench/inference/drift.py [--rounds N] [--duration S] [--warmup S]
[--concurrency C] [--client wrk|python] [--no-record]``). What one run does, on 127.0.0.1:

1. Two ``backplane serve`` (1 worker, kernel only, access log off, dynamic batching on as by
   default), each with a fresh data directory and SQLite database, a tenant with an API key, and
   the kernel's ``wide_mlp`` example (FP32 [-1, 256] -> [-1, 1], ~0.05 ms a row: the request,
   not the model, is the cost, so whatever sampling adds shows) uploaded as the tenant's model
   ``drift_mlp`` with ``backplane models add``. Each version gets the training profile a training
   run records (``backplane.inference.drift.feature_profile`` of 2,000 seeded normal rows),
   written to its row the way training writes it. One server runs with
   ``BACKPLANE_INFERENCE__DRIFT_SAMPLE_RATE=0`` (off), the other with the default (0.05).
2. Checks both answer a 1-row request with ``session.run``'s output.
3. ``--rounds`` rounds (default 8); in each, both servers are loaded at the same time, each by
   its own ``wrk`` (or ``load.py``) process: ``--warmup`` s then ``--duration`` s of single-row
   JSON requests at ``--concurrency`` (16). On a small shared machine whatever else runs
   slows a lone measurement by a different amount each time (rounds measured one after the
   other differed by 40 % from each other here); loaded together, both servers feel the same
   load and share the CPUs, so their throughput ratio is their cost ratio per request.
4. Reports median inferences/s, p50/p99 and server CPU per request of each, the median of the
   rounds' ratios on/off (goal >= 0.95), and what the sampling server's drift monitor did
   (``GET /api/models/drift_mlp/monitoring``: rows sampled, last PSI, alerts); appends the run to
   ``bench/RESULTS.md`` and exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import run as harness
from _common import HOST, RESULTS, ROOT, free_port, git_revision, machine, record, server

GOAL = 0.95
RATE = "BACKPLANE_INFERENCE__DRIFT_SAMPLE_RATE"
MODEL = "drift_mlp"
TARGETS = {"off": "drift sampling off (rate 0)", "on": "drift sampling at its default rate"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--client", choices=("wrk", "python"), default=None)
    parser.add_argument(
        "--on-rate",
        type=float,
        default=None,
        help="the sampling server's rate instead of the default (1 magnifies the cost; "
        "0 makes an A/A run that shows the two servers' own difference); not recorded",
    )
    parser.add_argument("--no-record", action="store_true")
    options = parser.parse_args(argv)
    if options.client is None:
        import shutil

        options.client = "wrk" if shutil.which("wrk") else "python"
    return options


async def _write_profile(env: dict[str, str], profile: dict[str, Any]) -> None:
    """What a training run records on the version it registers (the upload has none)."""
    from sqlalchemy import update

    from backplane.db.engine import Database
    from backplane.inference.models import ModelVersion
    from backplane.settings import load_settings

    settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
    database = Database(settings)
    try:
        async with database.maintenance("bench: the version's training profile") as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.name == MODEL)
                .values(feature_profile=profile)
            )
            await session.commit()
    finally:
        await database.dispose()


def monitoring(base: str, headers: dict[str, str]) -> dict[str, Any]:
    found = httpx.get(f"{base}/api/models/{MODEL}/monitoring", headers=headers, timeout=10)
    if found.status_code != 200:
        raise harness.BenchError(f"monitoring answered {found.status_code}: {found.text[:300]}")
    return dict(found.json()["versions"][0])


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    harness.exit_on_sigterm()
    harness.MODEL = MODEL
    harness.SERVERS.update(TARGETS)
    started = time.monotonic()
    from backplane.inference.drift import feature_profile

    info = harness.model_info(None)
    rng = np.random.default_rng(20)
    profile = feature_profile(rng.standard_normal((2000, info.features)))
    assert profile is not None
    row = rng.standard_normal((1, info.features)).astype(np.float32)
    session = harness.make_session(info.data)
    expected = session.run(info.output_names, {info.input_name: row})[0]
    body = harness.json_request(info.input_name, row)
    backplane = harness.backplane_command()
    print(f"bench: {backplane}; client {options.client}", flush=True)

    targets: dict[str, harness.Target] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-drift-")))
        body_file = work / "body-json-1"
        model_file = work / f"{MODEL}.onnx"
        model_file.write_bytes(info.data)
        body_file.write_bytes(body.content)
        on_rate = {} if options.on_rate is None else {RATE: str(options.on_rate)}
        for key, rate in (("off", {RATE: "0"}), ("on", on_rate)):
            env = harness.backplane_env(work / key, True, rate, None)
            api_key = harness.prepare_backplane(backplane, env, work)
            harness.upload_bench_model(backplane, env, work, model_file, 32, 0)
            asyncio.run(_write_profile(env, profile))
            port = free_port()
            base = f"http://{HOST}:{port}"
            headers = {"Authorization": f"Bearer {api_key}"}
            args = [backplane, "serve", "--host", HOST, "--port", str(port), "--workers", "1",
                    "--no-access-log"]  # fmt: skip
            process = stack.enter_context(
                server(TARGETS[key], args, env, work,
                       lambda b=base, h=headers: harness.wait_ready(b, h), [port],
                       harness.START_TIMEOUT_S)
            )  # fmt: skip
            harness.SERVER_LOGS[process.pid] = process.log  # type: ignore[attr-defined]
            targets[key] = harness.Target(
                key=key, server=key, encoding="json",
                url=f"{base}/v2/models/{MODEL}/infer",
                headers={**headers, **body.headers}, body=body_file, pid=process.pid,
            )  # fmt: skip
        harness.check_answers(targets, {"json-1": (body, expected), "json-32": (
            harness.json_request(info.input_name, np.repeat(row, 32, axis=0)),
            np.repeat(expected, 32, axis=0))})  # fmt: skip
        for round_no in range(1, options.rounds + 1):
            order = ("off", "on") if round_no % 2 else ("on", "off")
            for key in order:
                s = harness.measure(options.client, targets[key], options.concurrency,
                                    options.warmup, options.duration)  # fmt: skip
                print(
                    f"bench: round {round_no} {key:<3} {s.rps:7.0f} inferences/s  "
                    f"p50 {s.p50_ms:6.2f} ms  p99 {s.p99_ms:6.2f} ms  CPU {s.cpu_ms:.2f} ms/req",
                    flush=True,
                )
        on_auth = {k: v for k, v in targets["on"].headers.items() if k == "Authorization"}
        off_auth = {k: v for k, v in targets["off"].headers.items() if k == "Authorization"}
        seen = monitoring(targets["on"].url.split("/v2/")[0], on_auth)
        unseen = monitoring(targets["off"].url.split("/v2/")[0], off_auth)
    return report(options, targets, seen, unseen, time.monotonic() - started)


def report(options: argparse.Namespace, targets: dict[str, harness.Target],
           seen: dict[str, Any], unseen: dict[str, Any], elapsed: float) -> int:  # fmt: skip
    on, off = targets["on"], targets["off"]
    per_round = [a.rps / b.rps for a, b in zip(on.samples, off.samples, strict=True)]
    ratio = statistics.median(per_round)
    drift = seen["drift"]
    ok = ratio >= GOAL and unseen["drift"]["status"] == "off"
    ok = ok and (drift["sampled_rows"] > 0 or options.on_rate == 0)
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: sampling on/off {ratio:.3f} (goal >= {GOAL}); "
        f"{drift['sampled_rows']} rows sampled of {seen['requests']} requests"
    )
    facts = machine()
    revision = git_revision(["core", "bench"])
    rows = [
        "| target (median of rounds) | inferences/s | p50 ms | p99 ms | server CPU ms/inference "
        "| per-round inferences/s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {TARGETS[t.key]} | {t.median('rps'):.0f} | {t.median('p50_ms'):.2f} | "
            f"{t.median('p99_ms'):.2f} | {t.median('cpu_ms'):.2f} | "
            + ", ".join(f"{s.rps:.0f}" for s in t.samples)
            + " |"
            for t in (off, on)
        ),
    ]
    summary = [
        f"- machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']}, Python "
        f"{facts['python']}; shared with other work (noisy); load before/after: {facts['load']}",
        f"- load: `{options.client}`, one thread, separate process; concurrency "
        f"{options.concurrency} per server, single-row JSON requests; {options.rounds} rounds, "
        f"in each both servers loaded at the same time ({options.warmup} s warm-up + "
        f"{options.duration} s), so that the machine's other work weighs on both alike; "
        f"{elapsed:.0f} s in all",
        f"- **ratio sampling on/off: {ratio:.3f}** (median of the rounds' ratios; goal >= "
        f"{GOAL}); per round: "
        + ", ".join(f"{r:.3f}" for r in per_round)
        + f"; server CPU per inference on/off: {on.median('cpu_ms') / off.median('cpu_ms'):.3f}",
        f"- the sampling server's monitor: {drift['sampled_rows']} rows sampled of "
        f"{seen['requests']} requests ({drift['sampled_rows'] / max(seen['requests'], 1):.3f}); "
        f"status `{drift['status']}`, last max PSI {drift['max_psi']} over "
        f"{drift['computed_over_rows']} rows (every request sends the same row: it drifts, so "
        f"the alert path ran too: alerted at {drift['alerted_at']}); latency p50/p99 "
        f"{seen['latency']['p50_ms']}/{seen['latency']['p99_ms']} ms inside the server",
        f"- verdict: {verdict}",
    ]
    print("\n".join(["", *rows, "", *summary]))
    if not options.no_record and options.on_rate is None:
        marker = (
            f"<!-- bench-inference-drift-key: {revision}; {facts['cpus']}; {facts['cpu']}; "
            f"{options.client}; c={options.concurrency} -->"
        )
        section = "\n".join(
            [
                f"## Inference drift sampling (`bench/inference/drift.py`) · {facts['date']} · "
                f"{revision}",
                "",
                marker,
                f"`wide_mlp` uploaded as `{MODEL}` with a training profile, `POST /v2/models/"
                f"{MODEL}/infer`: throughput with `inference.drift_sample_rate` at its default "
                "(0.05) against 0, in one run. Goal (issue 20, acceptance 5): ratio >= 0.95.",
                "",
                *summary,
                "",
                *rows,
            ]
        )
        record(section, marker)
        print(f"bench: recorded in {RESULTS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
