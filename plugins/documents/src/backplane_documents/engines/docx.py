"""DOCX documents from Word files holding Jinja2 tags (docxtpl).

docxtpl's default Jinja2 environment is not sandboxed (a template could run code), so it is
always handed the sandboxed one, with XML autoescaping so data cannot inject WordprocessingML.
Uploaded templates are checked as ZIP archives first: a bounded number of entries and a bounded
uncompressed size (no zip bombs), and a ``word/document.xml`` part.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from backplane_documents.engines.jinja import context_of, sandboxed_environment, template_failure
from backplane_documents.errors import RenderError

MAX_ENTRIES = 1000
PAGE_BREAK = re.compile(rb'<w:br [^>]*w:type="page"')
ACTIVE_CONTENT = re.compile(
    r"(^|/)(vbaProject\.bin|vbaData\.xml|activeX/.*|oleObject[^/]*\.bin)$|\.(docm|xlsm|pptm)$",
    re.IGNORECASE,
)
RELATIONSHIP = re.compile(rb"<Relationship\b[^>]*>")
EXTERNAL = re.compile(rb'TargetMode\s*=\s*"External"')
HYPERLINK = re.compile(rb'Type\s*=\s*"[^"]*/hyperlink"')


def _refuse_active_content(archive: zipfile.ZipFile) -> None:
    """Templates are copied into every document: no macros, ActiveX or OLE objects (code that
    would reach each recipient), no external resources fetched when the file opens (remote
    templates, frames, images: tracking and worse). Hyperlinks are fine."""
    for name in archive.namelist():
        if ACTIVE_CONTENT.search(name):
            raise RenderError(
                f"docx template holds active content ({name}): macros, ActiveX "
                "and embedded objects are not allowed"
            )
    types = (
        archive.read("[Content_Types].xml") if "[Content_Types].xml" in archive.namelist() else b""
    )
    if b"macroEnabled" in types:
        raise RenderError("docx template is macro-enabled (.docm): not allowed")
    for name in archive.namelist():
        if not name.endswith(".rels"):
            continue
        for relationship in RELATIONSHIP.findall(archive.read(name)):
            if EXTERNAL.search(relationship) and not HYPERLINK.search(relationship):
                raise RenderError(
                    f"docx template refers to an external resource ({name}): a template may "
                    "not make documents fetch anything when opened"
                )


def check_docx(source: bytes, max_unpacked_bytes: int) -> None:
    """RenderError unless ``source`` is a reasonable .docx archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(source))
    except zipfile.BadZipFile:
        raise RenderError("a docx template must be a .docx file (a ZIP archive)") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise RenderError(f"docx template has more than {MAX_ENTRIES} parts")
        if sum(entry.file_size for entry in entries) > max_unpacked_bytes:
            raise RenderError(
                f"docx template unpacks to more than {max_unpacked_bytes} bytes "
                "(documents.max_template_bytes)"
            )
        if "word/document.xml" not in archive.namelist():
            raise RenderError("not a Word document: no word/document.xml in the archive")
        _refuse_active_content(archive)


def render_docx(source: bytes, data: dict[str, Any], max_output_bytes: int) -> tuple[bytes, int]:
    """The rendered .docx and its page count (1 + explicit page breaks: Word paginates the
    rest when it opens the file)."""
    from docxtpl import DocxTemplate

    check_docx(source, max_unpacked_bytes=max_output_bytes)
    try:
        template = DocxTemplate(io.BytesIO(source))
        template.render(context_of(data), jinja_env=sandboxed_environment(), autoescape=True)
        out = io.BytesIO()
        template.save(out)
    except RenderError:
        raise
    except Exception as error:  # noqa: BLE001 - any template failure becomes a clear error
        raise template_failure(error) from None
    content = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        body = archive.read("word/document.xml")
    return content, 1 + len(PAGE_BREAK.findall(body))
