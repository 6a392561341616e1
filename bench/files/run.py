"""File download benchmark: a 1 GiB file through ``GET /api/files/{id}/content`` (and its signed
URL) against Litestar's bare ``File`` response serving the same file.

Run by ``tox run -e bench-files``, or with the Python of any environment where
``backplane-core`` is installed: ``python bench/files/run.py [--size-mib N] [--rounds N]
[--no-record]``.

In a temporary data directory (SQLite, the kernel's plugins only) it runs ``backplane db
upgrade``, seeds a tenant (``backplane.testing.seed_tenant``), starts ``backplane serve`` (one
worker) and uploads the file through the API (random bytes, streamed), then starts
``bench/files/bare_app.py`` under uvicorn pointed at the object the upload stored, checks that
the three targets answer the same bytes (sha256), and downloads it with ``curl`` (to
/dev/null: the client costs least CPU of the available ones on a 2-core machine), interleaved
``bare, route, signed`` per round:

- ``bare``   ``GET /file`` on the bare app (``litestar.response.File``);
- ``route``  ``GET /api/files/{id}/content`` with the tenant's API key;
- ``signed`` ``GET /api/files/{id}/signed?sig=...`` (what a ``<video>`` tag fetches).

It reports the median over rounds of MiB/s and of server CPU seconds per GiB, and the ratio
route/bare (goal >= 0.8, issue 19 acceptance 7), records the run in ``bench/RESULTS.md`` (a
re-run of the same commit and machine replaces its record) and exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import (  # noqa: E402
    HOST,
    BenchError,
    command_output,
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
CHUNK = 1024 * 1024
TARGETS = ("bare", "route", "signed")
LABELS = {
    "bare": "bare Litestar `File` response",
    "route": "Backplane `GET /api/files/{id}/content` (API key)",
    "signed": "Backplane signed URL (no Authorization)",
}


def curl_download(url: str, headers: dict[str, str]) -> tuple[float, int]:
    """(seconds, bytes) of one download to /dev/null; any status but 200 fails the run."""
    args = [
        "curl",
        "--silent",
        "--show-error",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{size_download} %{time_total}",
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise BenchError(f"curl failed on {url}: {done.stderr.strip()}")
    status, size, seconds = done.stdout.split()
    if status != "200":
        raise BenchError(f"{url} answered {status}")
    return float(seconds), int(size)


def sha256_of(url: str, headers: dict[str, str]) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", url, headers=headers, timeout=600) as response:
        if response.status_code != 200:
            raise BenchError(f"{url} answered {response.status_code}")
        for chunk in response.iter_raw(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def random_body(size: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    for index in range(size // CHUNK):
        yield block[index % 7 :] + block[: index % 7]  # every MiB differs a little


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (1024)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    options = parser.parse_args(argv)
    exit_on_sigterm()
    size = options.size_mib * CHUNK
    backplane = str(Path(sys.executable).with_name("backplane"))
    with tempfile.TemporaryDirectory(prefix="bench-files-") as temporary, ExitStack() as stack:
        data_dir = Path(temporary) / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))} | {
            "BACKPLANE_DATA_DIR": str(data_dir),
            "BACKPLANE_PLUGINS": "",
            "BACKPLANE_DEMO_DATA": "false",
            "BACKPLANE_FILES__MAX_UPLOAD_BYTES": str(size),
        }
        subprocess.run([backplane, "db", "upgrade"], env=env, check=True, capture_output=True)
        from backplane.loading import load_plugins
        from backplane.settings import load_settings
        from backplane.testing import seed_tenant

        tenant = seed_tenant(load_plugins(load_settings(environ=env)), SLUG)
        auth = tenant.headers
        port, bare_port = free_port(), free_port()
        base, bare_base = f"http://{HOST}:{port}", f"http://{HOST}:{bare_port}"
        serve = stack.enter_context(
            server(
                "backplane serve",
                [backplane, "serve", "--port", str(port)],
                env,
                ROOT,
                lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 200,
                [port],
            )
        )
        print(f"uploading {options.size_mib} MiB ...", flush=True)
        uploaded = httpx.post(
            f"{base}/api/files",
            params={"name": "bench.bin"},
            content=random_body(size),
            headers=auth,
            timeout=600,
        )
        if uploaded.status_code != 201:
            raise BenchError(f"upload answered {uploaded.status_code}: {uploaded.text}")
        stored = uploaded.json()
        path = data_dir / "files" / str(tenant.tenant_id) / stored["id"]
        signed = httpx.post(
            f"{base}/api/files/{stored['id']}/signed-url",
            json={"expires_in_s": 3600},
            headers=auth,
            timeout=10,
        ).json()["url"]
        bare = stack.enter_context(
            server(
                "bare Litestar app",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bare_app:create_app",
                    "--factory",
                    "--host",
                    HOST,
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env | {"BENCH_FILES_PATH": str(path), "PYTHONPATH": str(HERE)},
                HERE,
                lambda: httpx.get(f"{bare_base}/health", timeout=2).status_code == 200,
                [bare_port],
            )
        )
        targets = {
            "bare": (f"{bare_base}/file", {}, bare.pid),
            "route": (f"{base}/api/files/{stored['id']}/content", auth, serve.pid),
            "signed": (f"{base}{signed}", {}, serve.pid),
        }
        for name, (url, headers, _) in targets.items():
            if sha256_of(url, headers) != stored["sha256"]:
                raise BenchError(f"{name} served other bytes than were uploaded")
        speeds: dict[str, list[float]] = {t: [] for t in TARGETS}
        cpu: dict[str, list[float]] = {t: [] for t in TARGETS}
        for round_ in range(options.rounds):
            for name in TARGETS:
                url, headers, pid = targets[name]
                before = cpu_seconds(pid)
                seconds, got = curl_download(url, headers)
                if got != size:
                    raise BenchError(f"{name} sent {got} bytes, not {size}")
                cpu[name].append((cpu_seconds(pid) - before) / (size / 1024**3))
                speeds[name].append(size / seconds / 2**20)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{t} {speeds[t][-1]:.0f} MiB/s" for t in TARGETS),
                flush=True,
            )
    median = {t: statistics.median(speeds[t]) for t in TARGETS}
    ratio = median["route"] / median["bare"]
    signed_ratio = median["signed"] / median["bare"]
    passed = ratio >= GOAL_RATIO
    verdict = "goal met" if passed else f"goal missed: route/bare {ratio:.2f} < {GOAL_RATIO}"
    facts = machine()
    revision = git_revision(["core", "bench/files"])
    key = f"{revision}; {facts['arch']}; {facts['cpus']}; {facts['cpu']}; {options.size_mib} MiB"
    lines = [
        f"## Files benchmark (`bench/files`) · {facts['date']} · {revision}",
        "",
        f"<!-- bench-files-key: {key} -->",
        f"Download of a {options.size_mib} MiB file (random bytes, uploaded through the API, in "
        "the page cache) through the files route and a signed URL, against Litestar's bare "
        "`File` response serving the same object; see `bench/files/run.py`. Goal (issue 19, "
        f"acceptance 7): MiB/s ratio route/bare >= {GOAL_RATIO}.",
        "",
        f"- machine: {facts['arch']}, {facts['cpus']} CPUs, {facts['cpu']}, {facts['memory']}, "
        f"Python {facts['python']}, kernel {facts['kernel']} (load average before recording: "
        f"{facts['load']}; the machine is shared)",
        "- servers: `backplane serve` (1 worker, kernel plugins only, SQLite) and "
        "`bench/files/bare_app.py` (uvicorn, 1 worker, no access log), both on 127.0.0.1",
        f"- client: {command_output(['curl', '--version']).splitlines()[0].split(' (')[0]} to "
        f"/dev/null, one download at a time, {options.rounds} interleaved rounds "
        "(bare, route, signed); every answer 200 with every byte; sha256 checked once per target",
        f"- ratios: route/bare **{ratio:.2f}**, signed/bare **{signed_ratio:.2f}** "
        f"(goal >= {GOAL_RATIO})",
        f"- verdict: {verdict}",
        "",
        f"| target (median of {options.rounds}) | MiB/s | ratio to bare | server CPU s/GiB "
        "| per-round MiB/s |",
        "|---|---:|---:|---:|---|",
    ]
    for name in TARGETS:
        lines.append(
            f"| {LABELS[name]} | {median[name]:.0f} | {median[name] / median['bare']:.2f} | "
            f"{statistics.median(cpu[name]):.2f} | "
            f"{', '.join(f'{s:.0f}' for s in speeds[name])} |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if not options.no_record:
        record(section, f"bench-files-key: {key}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
