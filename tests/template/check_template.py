"""Render the plugin template as a third party would, install it, and run its own tests.

Run by ``tox -e template``: copier renders ``plugin_template`` (the committed files) into a
temporary directory with a sample plugin name, the result is installed (not editable) next to
the kernel, its tests run with the kernel's pytest plugin, and its sources are checked to
import only ``backplane``'s public API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.unit.test_public_api import private_imports  # noqa: E402

PLUGIN = "acme_notes"


def run(*args: str, cwd: Path | None = None) -> None:
    print(f"[template] $ {' '.join(args)}", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    subprocess.run(args, cwd=cwd, env=env, check=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="backplane-template-") as tmp:
        target = Path(tmp) / "plugin"
        run(
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "--data",
            f"plugin_name={PLUGIN}",
            str(REPO / "plugin_template"),
            str(target),
        )
        problems = {
            str(path.relative_to(target)): found
            for path in target.rglob("*.py")
            if (found := private_imports(path.read_text()))
        }
        if problems:
            print(f"[template] FAIL: private kernel imports: {problems}", file=sys.stderr)
            return 1
        run(
            sys.executable,
            "-m",
            "uv",
            "pip",
            "install",
            "--python",
            sys.executable,
            "--reinstall-package",
            f"backplane-{PLUGIN.replace('_', '-')}",
            str(target),
        )
        run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=target)
        run(
            sys.executable,
            "-m",
            "uv",
            "pip",
            "uninstall",
            "--python",
            sys.executable,
            f"backplane-{PLUGIN.replace('_', '-')}",
        )
    print("[template] ok: rendered, installed, its tests pass, public API only", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
