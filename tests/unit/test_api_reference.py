"""The plugin API reference (``docs/reference.md``) is generated and cannot drift: every public
name and hook has a docstring, every hook an example, and the committed file is what
``scripts/api_reference.py`` writes from today's code."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import backplane
from backplane import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "api_reference", ROOT / "scripts/api_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_has_its_own_docstring() -> None:
    missing = [
        name
        for name in backplane.__all__
        if not name.startswith("__") and not inspect.getdoc(getattr(backplane, name))
    ]
    assert not missing


def test_every_hook_has_an_example() -> None:
    reference = generator()
    assert set(reference.hook_names(hookspecs)) - set(reference.HOOK_EXAMPLES) == set()
    assert set(reference.HOOK_EXAMPLES) - set(reference.hook_names(hookspecs)) == set()


def test_the_committed_reference_is_what_the_code_generates() -> None:
    committed = (ROOT / "docs/reference.md").read_text()
    assert committed == generator().render(), "run `python scripts/api_reference.py`"
