"""Render one document: the plugin's one entry point to its engines, used by the HTTP routes,
bulk jobs and the CLI alike.

:func:`render` is pure (no database, no kernel): it validates the data against the version's
field schema, then renders in a sandboxed worker process (:mod:`backplane_documents.sandbox`)
under :class:`RenderLimits`. It blocks; call it from a worker thread in async code
(``await asyncio.to_thread(render, ...)``). Every failure is a :class:`RenderError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Protocol

import msgspec

from backplane_documents.engines import ENGINES
from backplane_documents.errors import RenderError
from backplane_documents.fields import validate_fields
from backplane_documents.sandbox import Job, pool_for

__all__ = ["RenderError", "RenderLimits", "Rendered", "VersionLike", "render", "render_many"]


class VersionLike(Protocol):
    """What rendering needs of a template version (:class:`backplane_documents.models.
    TemplateVersion` is one; a bulk job may pass a detached copy)."""

    @property
    def engine(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    @property
    def field_schema(self) -> Sequence[Mapping[str, Any]]: ...


class RenderLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How much one render may take (from the plugin's settings: ``DocumentsSettings.limits``)."""

    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    max_output_bytes: Annotated[int, msgspec.Meta(ge=1)] = 20 * 1024 * 1024
    max_pages: Annotated[int, msgspec.Meta(ge=1)] = 200
    memory_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024 * 1024 * 1024
    """The worker process's address-space limit (0: none)."""
    workers: Annotated[int, msgspec.Meta(ge=1)] = 2
    """How many renders may run at once in this process."""


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered document: its bytes, media type, file extension and page count (PDF: exact;
    HTML: 1; DOCX: 1 + explicit page breaks)."""

    content: bytes
    media_type: str
    filename_ext: str
    pages: int


def render(
    version: VersionLike,
    fields: Mapping[str, Any],
    limits: RenderLimits,
    *,
    preview: bool = False,
) -> Rendered:
    """Render ``version`` with ``fields`` (validated against its schema first) under ``limits``.

    ``preview``: typst gives the first page as a PNG (no page limit); other engines their
    usual output. :class:`RenderError` on bad fields, a failing template, or a limit hit."""
    (outcome,) = render_many(version, [fields], limits, preview=preview)
    if isinstance(outcome, RenderError):
        raise outcome
    return outcome


def render_many(
    version: VersionLike,
    rows: Sequence[Mapping[str, Any]],
    limits: RenderLimits,
    *,
    preview: bool = False,
) -> list[Rendered | RenderError]:
    """Render ``version`` once per row, as :func:`render` does, in one job for one worker (a
    bulk job's batch: one round trip instead of one per document): each row's
    :class:`Rendered`, or the :class:`RenderError` it failed with, in order (each row is held
    to the limits on its own). Raises only when no worker could be had for the rows."""
    spec = ENGINES.get(version.engine)
    if spec is None:
        error = RenderError(f"unknown engine {version.engine!r}; known: {sorted(ENGINES)}")
        return [error for _ in rows]
    outcomes: list[Rendered | RenderError | None] = []
    valid: list[str] = []
    for fields in rows:
        try:
            data = validate_fields(version.field_schema, fields)
        except RenderError as error:
            outcomes.append(error)
            continue
        outcomes.append(None)
        valid.append(json.dumps(data, ensure_ascii=False))
    if not valid:
        return [o for o in outcomes if o is not None]
    job = Job(
        engine=version.engine,
        source=bytes(version.body),
        rows=valid,
        max_output_bytes=limits.max_output_bytes,
        max_pages=limits.max_pages,
        preview=preview,
    )
    replies = iter(pool_for(limits.workers, limits.memory_bytes).run(job, limits.timeout_s))
    media_type = spec.preview_media_type if preview else spec.media_type
    ext = "png" if preview and version.engine == "typst" else spec.filename_ext
    done: list[Rendered | RenderError] = []
    for outcome in outcomes:
        if outcome is not None:
            done.append(outcome)
            continue
        reply = next(replies)
        if reply.ok:
            done.append(
                Rendered(
                    content=reply.content,
                    media_type=media_type,
                    filename_ext=ext,
                    pages=reply.pages,
                )
            )
        else:
            done.append(RenderError(reply.error, kind=reply.kind))
    return done
