"""``backplane plugin new NAME``: start a third-party plugin from the kernel's copier template.

The template ships inside backplane-core (``backplane/plugin_template`` in the wheel; the
repository's ``plugin_template/`` in a source checkout), so the plugin matches the kernel the
author has installed. ``copier update`` needs a versioned template to bring later fixes, so
the template is first committed into a small git repository of the author's own (one commit
per template content, under ``$XDG_DATA_HOME/backplane/plugin-template``), and the plugin is
rendered from it: ``.copier-answers.yml`` records that repository and commit.
``backplane plugin template`` refreshes that repository after a kernel upgrade and prints it.

copier is an extra (``backplane-core[template]``), not a dependency: a server that only runs
plugins should not install it and its dependencies.
"""

from __future__ import annotations

import importlib
import keyword
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import click

NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "backplane",
    "GIT_AUTHOR_EMAIL": "backplane@localhost",
    "GIT_COMMITTER_NAME": "backplane",
    "GIT_COMMITTER_EMAIL": "backplane@localhost",
}


@click.group()
def plugin() -> None:
    """Write plugins: start one from the kernel's template."""


@plugin.command()
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the plugin (default: ./backplane-NAME).",
)
@click.option("--description", default="A Backplane plugin", show_default=True)
def new(name: str, directory: Path | None, description: str) -> None:
    """Render a new plugin NAME (a lower-case Python identifier) from the kernel's template."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise click.BadParameter(
            f"{name!r} is not a lower-case Python identifier such as 'helpdesk' "
            "(it becomes a URL segment, a migration branch and a settings section)",
            param_hint="NAME",
        )
    target = directory or Path(f"backplane-{name.replace('_', '-')}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise click.ClickException(f"{target} exists and is not empty: choose another --directory")
    copier = _copier()
    repo, commit = template_repository()
    copier.run_copy(
        str(repo),
        str(target),
        data={"plugin_name": name, "description": description},
        defaults=True,
        vcs_ref=commit,
        quiet=True,
        unsafe=False,
    )
    click.echo(f"plugin {name!r} written to {target}; next: see {target / 'README.md'}")


@plugin.command()
def template() -> None:
    """Refresh the versioned template repository (after a kernel upgrade) and print its path;
    then ``copier update`` in a plugin brings the template's changes."""
    repo, _ = template_repository()
    click.echo(str(repo))


def _copier() -> ModuleType:
    try:
        return importlib.import_module("copier")
    except ImportError:
        raise click.ClickException(
            "`backplane plugin new` needs copier: pip install 'backplane-core[template]'"
        ) from None


def template_repository() -> tuple[Path, str]:
    """The git repository holding this kernel's template, committed if it changed; and the
    commit to render."""
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    repo = home / "backplane" / "plugin-template"
    if shutil.which("git") is None:
        raise click.ClickException("`backplane plugin new` needs git (copier updates use it)")
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").is_dir():
        _git(repo, "init", "--quiet")
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(
        _template_source(), repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    _git(repo, "add", "--all")
    if _git(repo, "status", "--porcelain"):
        from backplane import __version__

        _git(repo, "commit", "--quiet", "-m", f"plugin template of backplane-core {__version__}")
    return repo, _git(repo, "rev-parse", "HEAD")


def _template_source() -> Path:
    """Package data in a wheel install; the repository's folder in an editable one."""
    here = Path(__file__).resolve().parent  # backplane/cli
    for candidate in (here.parent / "plugin_template", here.parents[3] / "plugin_template"):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise click.ClickException("the plugin template is missing from this backplane-core install")


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args],
        capture_output=True,
        text=True,
        env=os.environ | _GIT_ENV,
        check=False,
    )
    if result.returncode != 0:
        raise click.ClickException(f"git {args[0]} in {repo} failed: {result.stderr.strip()}")
    return result.stdout.strip()
