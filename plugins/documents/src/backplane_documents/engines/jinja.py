"""The Jinja2 environment HTML and DOCX templates run in: sandboxed (no attribute of Python
internals, no unsafe calls: ``''.__class__`` is a ``SecurityError``), autoescaped, and strict
about undefined names so that a misspelt field is an error rather than a blank."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backplane_documents.errors import RenderError


def sandboxed_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandbox: immutable too, so a template cannot alter the data it was given
    (``data.items.append``)."""
    return ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def template_failure(error: Exception) -> RenderError:
    """A Jinja2 failure as a clear error; a sandbox breach attempt says so."""
    if isinstance(error, SecurityError):
        return RenderError(f"template refused by the sandbox: {error}")
    if isinstance(error, TemplateError):
        line = getattr(error, "lineno", None)
        where = f" (line {line})" if line else ""
        return RenderError(f"template error{where}: {error.message or type(error).__name__}")
    return RenderError(f"template error: {type(error).__name__}: {error}")


def check_syntax(source: str) -> None:
    """Parse a Jinja2 template (nothing runs): RenderError on a syntax error."""
    try:
        sandboxed_environment().parse(source)
    except TemplateError as error:
        raise template_failure(error) from None


def context_of(data: dict[str, Any]) -> dict[str, Any]:
    """Templates see each field by name, and all of them as ``fields``."""
    return {**data, "fields": data}
