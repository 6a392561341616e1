"""The validation report of one generated document (quality control).

Every document of a bulk job gets one, kept with its outcome (``GET .../jobs/{id}/rows``) and
in the job's ZIP manifest: which declared fields the row lacked or had wrong, which of its
columns the template does not use (a misspelt header shows up here, not as a silently empty
field), what came out (media type, pages, bytes, SHA-256) and whether the output looks like
what its media type promises. It is cheap enough for every row and never fails a row by
itself: a row fails on its error; the report says what else to look at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
}
"""The first bytes a well-formed document of the type starts with."""


class RenderedLike(Protocol):
    """What the report reads of a rendering (``backplane_documents.rendering.Rendered``)."""

    @property
    def content(self) -> bytes: ...

    @property
    def media_type(self) -> str: ...

    @property
    def pages(self) -> int: ...


class QualityReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    """Rendered, with every declared required field present and no problem found."""
    missing: list[str] = []
    """Required fields the row did not give (nor a computed field filled)."""
    unset: list[str] = []
    """Optional fields the row left empty (the template shows its default)."""
    unknown: list[str] = []
    """Columns of the row the template does not declare (ignored)."""
    errors: list[str] = []
    """Why the row failed, if it did."""
    problems: list[str] = []
    """What is wrong with the output (empty, not what its type promises, over a limit)."""
    media_type: str | None = None
    pages: int | None = None
    size: int | None = None
    sha256: str | None = None


def report(
    *,
    row: Mapping[str, Any] | None,
    declared: Mapping[str, bool],
    computed: Iterable[str] = (),
    rendered: RenderedLike | None = None,
    error: str | None = None,
    max_pages: int | None = None,
    max_bytes: int | None = None,
) -> QualityReport:
    """The report of one row: ``declared`` maps each field of the template to whether it is
    required; ``computed`` names the fields a model fills (never missing from the row);
    ``rendered`` is the output (None when the row failed with ``error``)."""
    given = {k for k, v in (row or {}).items() if v is not None and v != ""}
    filled = set(computed)
    missing = sorted(n for n, req in declared.items() if req and n not in given | filled)
    unset = sorted(n for n, req in declared.items() if not req and n not in given | filled)
    unknown = sorted(given - set(declared))
    problems: list[str] = []
    digest = None
    if rendered is not None:
        content = rendered.content
        digest = hashlib.sha256(content).hexdigest()
        problems = _output_problems(rendered, max_pages, max_bytes)
    errors = [error] if error else []
    ok = rendered is not None and not errors and not missing and not problems
    return QualityReport(
        ok=ok,
        missing=missing,
        unset=unset,
        unknown=unknown,
        errors=errors,
        problems=problems,
        media_type=rendered.media_type if rendered is not None else None,
        pages=rendered.pages if rendered is not None else None,
        size=len(rendered.content) if rendered is not None else None,
        sha256=digest,
    )


def _output_problems(
    rendered: RenderedLike, max_pages: int | None, max_bytes: int | None
) -> list[str]:
    problems = []
    content = rendered.content
    if not content:
        problems.append("the document is empty")
    signatures = SIGNATURES.get(rendered.media_type)
    if content and signatures and not content.startswith(signatures):
        problems.append(f"the output does not start as a {rendered.media_type} file does")
    paged = rendered.media_type in SIGNATURES
    if paged and rendered.pages < 1:
        problems.append("the document has no page")
    if max_pages is not None and rendered.pages > max_pages:
        problems.append(f"{rendered.pages} pages, above the limit of {max_pages}")
    if max_bytes is not None and len(content) > max_bytes:
        problems.append(f"{len(content)} bytes, above the limit of {max_bytes}")
    return problems
