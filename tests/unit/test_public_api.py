"""Plugins may import from ``backplane`` only what ``backplane.__all__`` exports.

Scans the source of every first-party plugin, the marketplace, contrib integrations, the
plugin template and the sample plugins.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import backplane

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SOURCE_ROOTS = [
    "plugins",
    "marketplace",
    "contrib",
    "plugin_template",
    "tests/sample_plugins",
]
# Modules a plugin may import besides the package itself: the contract and the test fixtures.
PUBLIC_MODULES = {"backplane", "backplane.testing"}


def private_imports(source: str) -> list[str]:
    """Every import of a kernel name outside the public API in ``source``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("backplane.") and alias.name not in PUBLIC_MODULES:
                    problems.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = node.module
            if module == "backplane":
                problems.extend(
                    f"from backplane import {a.name}"
                    for a in node.names
                    if a.name not in backplane.__all__
                )
            elif module.startswith("backplane.") and module not in PUBLIC_MODULES:
                problems.append(f"from {module} import ...")
    return problems


def plugin_sources() -> list[Path]:
    files: list[Path] = []
    for root in PLUGIN_SOURCE_ROOTS:
        files.extend(p for p in (REPO / root).rglob("*.py") if ".venv" not in p.parts)
    return sorted(files)


def test_the_scan_covers_the_sample_plugins() -> None:
    scanned = {p.relative_to(REPO).as_posix() for p in plugin_sources()}
    assert "tests/sample_plugins/kitchen_sink/bp_sample_kitchen_sink/plugin.py" in scanned
    assert "tests/sample_plugins/kitchen_sink/bp_sample_kitchen_sink/routes.py" in scanned


@pytest.mark.parametrize("path", plugin_sources(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_plugin_imports_only_the_public_api(path: Path) -> None:
    assert private_imports(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import backplane.plugins",
        "from backplane.db.base import Base",
        "from backplane import load_plugins",
        "from backplane.settings import Settings",
    ],
)
def test_the_checker_flags_private_imports(source: str) -> None:
    assert private_imports(source) != []


def test_the_checker_accepts_public_imports() -> None:
    source = "import backplane\nfrom backplane import hookimpl, PluginInfo, Base\n"
    assert private_imports(source) == []


def test_every_exported_name_resolves() -> None:
    for name in backplane.__all__:
        assert getattr(backplane, name) is not None, name
