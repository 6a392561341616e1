"""The template engines: what each produces, how a template is checked when it is saved, and how
it is rendered inside the sandbox's worker process (:mod:`backplane_documents.sandbox_worker`).

Every engine receives the document's data only as JSON (never spliced into the template's
source), and none can read files, reach the network or run code: typst compiles against an
empty temporary root with package downloads blocked; Jinja2 (HTML, DOCX) runs in a
``SandboxedEnvironment`` with autoescaping.
"""

from __future__ import annotations

from typing import Literal

import msgspec

EngineName = Literal["typst", "html", "docx"]


class EngineSpec(msgspec.Struct, frozen=True):
    """What an engine's documents are: their media type, file extension, and whether the
    template's source is text (typst, HTML) or a binary file (a .docx)."""

    media_type: str
    filename_ext: str
    binary_source: bool
    preview_media_type: str


ENGINES: dict[str, EngineSpec] = {
    "typst": EngineSpec("application/pdf", "pdf", False, "image/png"),
    "html": EngineSpec("text/html; charset=utf-8", "html", False, "text/html; charset=utf-8"),
    "docx": EngineSpec(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        True,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
}
DEFAULT_ENGINE: EngineName = "typst"
