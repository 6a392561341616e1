"""What an extraction produces: text per page (and tables where the format has them)."""

from __future__ import annotations

from typing import Literal

import msgspec

Method = Literal["text-layer", "ocr", "docx"]


class PageText(msgspec.Struct, frozen=True, kw_only=True):
    """One page's text, in reading order, lines separated by ``\\n``."""

    number: int
    """1-based page number."""
    text: str
    method: Method
    """``text-layer``: the PDF's own text (exact); ``ocr``: recognised from pixels;
    ``docx``: the document's paragraphs and table cells."""
    tables: list[list[list[str]]] = msgspec.field(default_factory=list)
    """Tables on the page, each a list of rows of cell texts (DOCX only: a PDF has no table
    structure to read, and OCR does not guess one)."""
    confidence: float | None = None
    """Mean recognition confidence (0-1) of an OCR page; None otherwise."""


class Extraction(msgspec.Struct, frozen=True, kw_only=True):
    """The text of one document."""

    media_type: str
    pages: list[PageText]

    @property
    def text(self) -> str:
        """All pages' text, pages separated by a form feed (``\\f``) as ``pdftotext`` does."""
        return "\f".join(page.text for page in self.pages)

    @property
    def tables(self) -> list[list[list[str]]]:
        """Every table of the document, in page order."""
        return [table for page in self.pages for table in page.tables]
