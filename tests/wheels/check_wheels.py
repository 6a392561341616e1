"""Build every distribution's wheel, install them all in a clean venv, and smoke-test it.

Run by ``tox run -e wheels`` (or directly: ``python tests/wheels/check_wheels.py``; it needs
``uv``, as a module of this interpreter or on PATH). What it proves is that Backplane works
installed from wheels, not only editable: package data (alembic env and revisions, Swagger
assets, shipped models) is in the wheels and entry points are declared.

Steps: ``uv build --wheel`` for the kernel (``core/``), the meta distribution (``.``), every
directory under ``plugins/``, ``marketplace/`` and ``contrib/`` holding a ``pyproject.toml``, and
the ``kitchen_sink`` sample plugin; ``uv venv`` in a temp dir; ``uv pip install`` of all the
wheels (their dependencies from the package index by name, as a user would get them); then,
with a temp data directory and no inherited ``BACKPLANE_*`` variables: ``backplane db upgrade``,
``backplane db check``, ``backplane plugins list --json``, and ``backplane serve`` on a free
127.0.0.1 port, probed over HTTP until ready, then stopped.

Exits 0 when every check passes, 1 with a ``FAIL:`` line otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# Folders whose sub-directories with a pyproject.toml are distributions (or that are one).
DISTRIBUTION_FOLDERS = ("plugins", "marketplace", "contrib")
SAMPLE_PLUGINS = ("tests/sample_plugins/kitchen_sink",)
EXPECTED_LOADED = ("core", "documents", "education", "marketing", "kitchen_sink", "marketplace")
READY_TIMEOUT_S = 30.0
BUILD_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 120


class CheckFailed(Exception):
    """One check failed; the message says which and why."""


def say(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(f"[wheels] {line}", flush=True)


def uv_command() -> list[str]:
    """uv from this interpreter's environment (the tox env), else the one on PATH."""
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return [found]
    raise CheckFailed("uv not found: install it in this environment (`pip install uv`)")


def distributions() -> list[Path]:
    """Every distribution directory to build, kernel first."""
    found = [ROOT / "core", ROOT]
    for folder in DISTRIBUTION_FOLDERS:
        base = ROOT / folder
        if not base.is_dir():
            continue
        candidates = {p.parent for p in base.glob("pyproject.toml")}
        candidates |= {p.parent for p in base.glob("*/pyproject.toml")}
        found.extend(sorted(candidates))
    found.extend(ROOT / p for p in SAMPLE_PLUGINS)
    missing = [str(d) for d in found if not (d / "pyproject.toml").is_file()]
    if missing:
        raise CheckFailed(f"no pyproject.toml in: {', '.join(missing)}")
    return found


def run(
    args: Sequence[str | Path],
    *,
    what: str,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command; return its stdout; on failure raise with its whole output."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{what}: timed out after {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise CheckFailed(
            f"{what}: exit code {result.returncode}\n"
            f"--- command: {' '.join(str(a) for a in args)}\n"
            f"--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"
        )
    say(f"ok: {what} ({time.monotonic() - started:.1f} s)")
    return result.stdout


def build_wheels(uv: list[str], out_dir: Path, work: Path) -> list[Path]:
    wheels: list[Path] = []
    for source in distributions():
        before = set(out_dir.glob("*.whl"))
        # --no-sources: build as a user of the package index would, ignoring workspace sources.
        run(
            [*uv, "build", "--wheel", "--no-sources", "--out-dir", out_dir, source],
            what=f"build wheel of {source.relative_to(ROOT).as_posix() or '.'}",
            timeout=BUILD_TIMEOUT_S,
            cwd=work,
        )
        new = sorted(set(out_dir.glob("*.whl")) - before)
        if len(new) != 1:
            raise CheckFailed(f"building {source} produced {len(new)} new wheels: {new}")
        say(f"    -> {new[0].name}")
        wheels.extend(new)
    return wheels


def check_wheel_contents(wheels: list[Path]) -> None:
    """Package data that only an installed wheel can prove is shipped."""
    by_name = {w.name.split("-")[0]: w for w in wheels}
    kernel = by_name.get("backplane_core")
    if kernel is None:
        raise CheckFailed(f"no backplane_core wheel among {[w.name for w in wheels]}")
    with zipfile.ZipFile(kernel) as archive:
        names = archive.namelist()
    required = ["backplane/migrations/env.py", "backplane/migrations/script.py.mako"]
    missing = [n for n in required if n not in names]
    revisions = [n for n in names if re.fullmatch(r"backplane/migrations/versions/[^/]+\.py", n)]
    if not revisions:
        missing.append("backplane/migrations/versions/*.py")
    if missing:
        raise CheckFailed(f"{kernel.name} lacks {', '.join(missing)}")
    say(f"ok: {kernel.name} ships the alembic env and {len(revisions)} revision(s)")

    sink = by_name.get("backplane_sample_kitchen_sink")
    if sink is not None:
        with zipfile.ZipFile(sink) as archive:
            names = archive.namelist()
        wanted = {
            "migration revision": r"bp_sample_kitchen_sink/migrations/[^/]+\.py",
            "shipped ONNX model": r"bp_sample_kitchen_sink/shipped_models/[^/]+\.onnx",
        }
        for label, pattern in wanted.items():
            if not any(re.fullmatch(pattern, n) for n in names):
                raise CheckFailed(f"{sink.name} lacks its {label} ({pattern})")
        say(f"ok: {sink.name} ships its migrations and ONNX model")

    documents = by_name.get("backplane_documents")
    if documents is None:
        raise CheckFailed(f"no backplane_documents wheel among {[w.name for w in wheels]}")
    with zipfile.ZipFile(documents) as archive:
        names = archive.namelist()
    wanted = {
        "migration revision": r"backplane_documents/migrations/documents_0001_[^/]+\.py",
        "demo template": r"backplane_documents/demo_templates/invoice\.typ",
    }
    for label, pattern in wanted.items():
        if not any(re.fullmatch(pattern, n) for n in names):
            raise CheckFailed(f"{documents.name} lacks its {label} ({pattern})")
    say(f"ok: {documents.name} ships its migrations and demo templates")

    education = by_name.get("backplane_education")
    if education is None:
        raise CheckFailed(f"no backplane_education wheel among {[w.name for w in wheels]}")
    with zipfile.ZipFile(education) as archive:
        names = archive.namelist()
    pattern = r"backplane_education/migrations/education_0001_[^/]+\.py"
    if not any(re.fullmatch(pattern, n) for n in names):
        raise CheckFailed(f"{education.name} lacks its migration revision ({pattern})")
    say(f"ok: {education.name} ships its migrations")

    marketing = by_name.get("backplane_marketing")
    if marketing is None:
        raise CheckFailed(f"no backplane_marketing wheel among {[w.name for w in wheels]}")
    with zipfile.ZipFile(marketing) as archive:
        pattern = r"backplane_marketing/migrations/marketing_0001_[^/]+\.py"
        if not any(re.fullmatch(pattern, n) for n in archive.namelist()):
            raise CheckFailed(f"{marketing.name} lacks its migration revision ({pattern})")
    say(f"ok: {marketing.name} ships its migrations")


def clean_environment(venv: Path, data_dir: Path) -> dict[str, str]:
    """The caller's environment without Backplane's or Python's own steering variables."""
    dropped_prefixes = ("BACKPLANE_", "OTEL_")
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CONDA_PREFIX"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped_prefixes) and k not in dropped
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["BACKPLANE_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http_get(
    url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    """GET ``url``; (status, body, content type). HTTP errors are returned, not raised."""
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def get_json(
    base: str, path: str, expected_status: int = 200, headers: dict[str, str] | None = None
) -> object:
    status, body, ctype = http_get(base + path, headers=headers)
    if status != expected_status:
        raise CheckFailed(
            f"GET {path}: status {status}, expected {expected_status}: {body[:500]!r}"
        )
    if "json" not in ctype:
        raise CheckFailed(f"GET {path}: content type {ctype!r}, expected JSON")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise CheckFailed(f"GET {path}: invalid JSON ({exc}): {body[:500]!r}") from exc


@contextmanager
def server(
    backplane: Path, port: int, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``backplane serve`` in the background; yields its base URL and process; always stops it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(backplane), "serve", "--host", HOST, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group: stopping it stops any worker too
        )
    base = f"http://{HOST}:{port}"
    say(f"started backplane serve (pid {proc.pid}) on {base}")
    try:
        yield base, proc
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n--- server output:\n{log.read_text(errors='replace')}") from exc
    finally:
        stop(proc)
        say(f"stopped backplane serve (exit code {proc.returncode})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"backplane serve exited with code {proc.returncode} before ready")
        try:
            status, body, _ = http_get(base + "/health/ready", timeout=2)
        except (OSError, urllib.error.URLError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                ready = json.loads(body)
                if not isinstance(ready, dict):
                    raise CheckFailed(f"/health/ready: expected an object, got {ready!r}")
                return ready
            last = f"status {status}: {body[:300]!r}"
        time.sleep(0.25)
    raise CheckFailed(
        f"/health/ready did not answer 200 within {READY_TIMEOUT_S:.0f} s (last: {last})"
    )


def check_plugins_loaded(records: object, where: str) -> None:
    if not isinstance(records, list):
        raise CheckFailed(f"{where}: expected a list of plugins, got {records!r}")
    status = {r.get("name"): r.get("status") for r in records if isinstance(r, dict)}
    for name in EXPECTED_LOADED:
        if status.get(name) != "loaded":
            raise CheckFailed(
                f"{where}: plugin {name!r} has status {status.get(name)!r}, expected 'loaded' "
                f"(all: {status})"
            )
    say(f"ok: {where}: {', '.join(f'{n}={s}' for n, s in status.items())}")


def post_json(base: str, path: str, body: object, headers: dict[str, str]) -> tuple[int, object]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()[:500]


def check_documents_render(base: str, auth: dict[str, str]) -> None:
    """The documents plugin renders from its wheel: its sandbox worker is a module of the
    installed package (``python -m backplane_documents.sandbox_worker``), typst's too."""
    source = "#let d = json(bytes(sys.inputs.data))\nHello #d.name"
    body = {"name": "wheel check", "source": source, "fields": [{"name": "name"}]}
    status, template = post_json(base, "/api/documents/templates", body, auth)
    if status != 201 or not isinstance(template, dict):
        raise CheckFailed(f"POST /api/documents/templates: status {status}: {template!r}")
    path = f"/api/documents/templates/{template['id']}/render"
    status, document = post_json(base, path, {"fields": {"name": "wheel"}}, auth)
    if status != 201 or not isinstance(document, dict):
        raise CheckFailed(f"POST {path}: status {status}: {document!r}")
    status, content, ctype = http_get(base + document["download_url"], headers=auth)
    if status != 200 or not content.startswith(b"%PDF") or ctype != "application/pdf":
        raise CheckFailed(f"GET {document['download_url']}: {status} {ctype} {content[:40]!r}")
    say(f"ok: the documents plugin rendered a {document['pages']}-page PDF from its wheel")


def check_server(base: str, proc: subprocess.Popen[bytes], api_key: str) -> None:
    ready = wait_ready(base, proc)
    say(f"ok: GET /health/ready 200 (status {ready.get('status')!r})")
    check_plugins_loaded(ready.get("plugins"), "GET /health/ready plugins")

    get_json(base, "/api/kitchen_sink/greeting/", expected_status=401)
    say("ok: GET /api/kitchen_sink/greeting/ without credentials -> 401")
    auth = {"Authorization": f"Bearer {api_key}"}
    greeting = get_json(base, "/api/kitchen_sink/greeting/", headers=auth)
    if greeting != {"greeting": "hello"}:
        raise CheckFailed(f"GET /api/kitchen_sink/greeting/: got {greeting!r}")
    say("ok: GET /api/kitchen_sink/greeting/ -> {'greeting': 'hello'}")

    check_documents_render(base, auth)

    schema = get_json(base, "/schema/openapi.json")
    paths = schema.get("paths", {}) if isinstance(schema, dict) else {}
    if not any(p.startswith("/api/kitchen_sink/") for p in paths):
        raise CheckFailed(f"/schema/openapi.json lists no /api/kitchen_sink/ path: {list(paths)}")
    say(f"ok: GET /schema/openapi.json 200 ({len(paths)} paths)")

    status, body, _ = http_get(base + "/schema")
    if status != 200:
        raise CheckFailed(f"GET /schema: status {status}: {body[:500]!r}")
    html = body.decode(errors="replace")
    assets = sorted(set(re.findall(r"""(?:src|href)=["'](/[^"']+\.(?:js|css))["']""", html)))
    if not assets:
        raise CheckFailed(f"GET /schema: the page references no local JS/CSS assets:\n{html}")
    for asset in assets:
        status, body, _ = http_get(base + asset)
        if status != 200 or not body:
            raise CheckFailed(f"GET {asset} (Swagger UI asset): status {status}, {len(body)} bytes")
    say(f"ok: GET /schema 200, its {len(assets)} assets served: {', '.join(assets)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    options = parser.parse_args(argv)

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="backplane-wheels-"))
    say(f"work dir {tmp}")
    try:
        uv = uv_command()
        dist, venv, data, work = tmp / "dist", tmp / "venv", tmp / "data", tmp / "work"
        for folder in (dist, data, work):
            folder.mkdir()

        wheels = build_wheels(uv, dist, work)
        check_wheel_contents(wheels)

        run(
            [*uv, "venv", "--quiet", "--python", sys.executable, venv],
            what="create clean venv",
            timeout=COMMAND_TIMEOUT_S,
            cwd=work,
        )
        python = venv / "bin" / "python"
        run(
            [*uv, "pip", "install", "--python", python, *wheels],
            what=f"install {len(wheels)} wheels",
            timeout=INSTALL_TIMEOUT_S,
            cwd=work,
        )

        env = clean_environment(venv, data)
        where = run(
            [
                python,
                "-c",
                "import backplane, bp_sample_kitchen_sink; "
                "print(backplane.__file__); print(bp_sample_kitchen_sink.__file__)",
            ],
            what="import the installed packages",
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        for line in where.split():
            if not Path(line).resolve().is_relative_to(venv.resolve()):
                raise CheckFailed(f"imported from outside the clean venv: {line}")

        backplane = venv / "bin" / "backplane"
        out = run(
            [backplane, "db", "upgrade"],
            what="backplane db upgrade",
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        say(textwrap.indent(out.strip(), "    "))
        out = run(
            [backplane, "db", "check"],
            what="backplane db check",
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        say(textwrap.indent(out.strip(), "    "))
        listing = run(
            [backplane, "plugins", "list", "--json"],
            what="backplane plugins list --json",
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        try:
            records = json.loads(listing)
        except ValueError as exc:
            raise CheckFailed(f"plugins list --json printed invalid JSON: {listing!r}") from exc
        check_plugins_loaded(records, "backplane plugins list --json")
        created = run(
            [
                backplane,
                "tenants",
                "create",
                "wheels",
                "--owner-email",
                "o@wheels.example.org",
                "--json",
            ],
            what="backplane tenants create",
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            cwd=work,
        )
        api_key = json.loads(created)["api_key"]
        say("ok: backplane tenants create printed a one-time API key")

        log = tmp / "serve.log"
        with server(backplane, free_port(), env, work, log) as (base, proc):
            check_server(base, proc, api_key)
        output = log.read_text(errors="replace")
        if "Traceback" in output:
            raise CheckFailed(f"the server logged a traceback:\n{output}")
        if "Application shutdown complete" not in output:
            raise CheckFailed(f"the server did not shut down gracefully:\n{output}")
        say("ok: server shut down gracefully (lifespan shutdown ran, no traceback logged)")
    except CheckFailed as exc:
        print(f"[wheels] FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if options.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"all checks passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
