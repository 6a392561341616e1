"""Helpers shared by the documents plugin's tests."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from backplane_documents.demo import demo_templates
from backplane_documents.generation import VersionSnapshot
from backplane_documents.templates import TemplateIn, checked_schema

SPIN = "#{ let x = 0; for i in range(100000) { for j in range(100000) { x += 1 } }; x }"
"""A typst template that computes for hours, in little memory."""


def snapshot(template: TemplateIn) -> VersionSnapshot:
    """The version a template as sent to the API would store (source bytes, schema)."""
    if template.source_base64 is not None:
        body = base64.b64decode(template.source_base64)
    else:
        body = (template.source or "").encode("utf-8")
    return VersionSnapshot(template.engine, body, checked_schema(template.fields))


def demo(name: str) -> TemplateIn:
    return next(t for t in demo_templates() if t.name == name)


def docx_with(*paragraphs: str) -> bytes:
    """A Word document whose paragraphs are ``paragraphs`` (Jinja2 tags for docxtpl)."""
    from docx import Document

    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_text(content: bytes) -> str:
    """The text of a .docx, read back with python-docx."""
    from docx import Document

    return "\n".join(p.text for p in Document(io.BytesIO(content)).paragraphs)


def zip_bomb(unpacked: int) -> bytes:
    """A ZIP whose one entry unpacks to ``unpacked`` bytes of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * unpacked)
    return out.getvalue()


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def pdf_text_of(content: bytes) -> str:
    """The text of a PDF, read back with pypdf."""
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def backplane(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``backplane`` command, as an operator runs it, on the test's database."""
    command = shutil.which("backplane", path=str(Path(sys.executable).parent)) or "backplane"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPLANE_")}
    return subprocess.run(
        [command, *args],
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
