"""``backplane plugin new``: renders the template with its copier answers, so that ``copier
update`` brings later template changes; bad names, busy directories and a missing copier are
one-line errors. (What the rendered plugin does is checked by ``tox -e template``.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backplane.cli import plugin_new
from tests.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the template that the test may change, as a kernel upgrade would; and a data
    home of the test's own for the versioned template repository."""
    copy = tmp_path / "template-source"
    shutil.copytree(REPO / "plugin_template", copy)
    monkeypatch.setattr(plugin_new, "_template_source", lambda: copy)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return copy


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_new_renders_the_plugin_and_keeps_the_copier_answers(
    template: Path, tmp_path: Path
) -> None:
    target = tmp_path / "helpdesk"
    made = run_cli("plugin", "new", "helpdesk", "--directory", str(target), env={})
    assert made.returncode == 0, made.stderr
    assert f"plugin 'helpdesk' written to {target}" in made.stdout
    package = target / "src" / "backplane_helpdesk"
    assert 'helpdesk = "backplane_helpdesk.plugin"' in (target / "pyproject.toml").read_text()
    assert 'name="helpdesk"' in (package / "plugin.py").read_text()
    assert (package / "migrations" / "helpdesk_0001_items.py").is_file()
    answers = yaml.safe_load((target / ".copier-answers.yml").read_text())
    assert answers["plugin_name"] == "helpdesk"
    assert answers["_commit"]  # a versioned source: what `copier update` needs
    assert Path(answers["_src_path"]) == tmp_path / "xdg" / "backplane" / "plugin-template"


def test_copier_update_brings_a_later_template_change(template: Path, tmp_path: Path) -> None:
    import copier

    target = tmp_path / "helpdesk"
    assert run_cli("plugin", "new", "helpdesk", "--directory", str(target), env={}).returncode == 0
    git(target, "init", "--quiet")
    git(target, "add", "--all")
    git(target, "commit", "--quiet", "-m", "from the template")
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nA later template fix for {{ plugin_name }}.\n")

    refreshed = run_cli("plugin", "template", env={})
    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout.strip() == str(tmp_path / "xdg" / "backplane" / "plugin-template")
    copier.run_update(str(target), defaults=True, overwrite=True, quiet=True, unsafe=False)
    assert "A later template fix for helpdesk." in (target / "README.md").read_text()


@pytest.mark.parametrize("name", ["Helpdesk", "help-desk", "1desk", "class", "", "x" * 64])
def test_a_bad_name_is_one_line(name: str, template: Path, tmp_path: Path) -> None:
    refused = run_cli("plugin", "new", name, "--directory", str(tmp_path / "p"), env={})
    assert refused.returncode == 2
    assert "is not a lower-case Python identifier" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "p").exists()


def test_an_existing_directory_must_be_empty(template: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = run_cli("plugin", "new", "helpdesk", "--directory", str(busy), env={})
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == f"Error: {busy} exists and is not empty: choose another --directory"
    )
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("plugin", "new", "helpdesk", "--directory", str(empty), env={}).returncode == 0
    assert (empty / "pyproject.toml").is_file()


def test_without_copier_the_error_says_what_to_install(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "copier", None)  # an import of it fails
    refused = run_cli("plugin", "new", "helpdesk", "--directory", str(tmp_path / "p"), env={})
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "Error: `backplane plugin new` needs copier: pip install 'backplane-core[template]'"
    )
