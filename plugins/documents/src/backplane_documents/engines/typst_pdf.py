"""PDF documents from typst templates (the default engine).

The template compiles against an empty temporary root directory, so ``read``, ``image``,
``json`` or ``include`` of any path find nothing (and ``..`` may not escape the root); the
document's data arrives only as ``sys.inputs.data``, a JSON string the template decodes with
``json(bytes(sys.inputs.data))``; package imports find no local packages and cannot download
(the sandbox points the proxy variables the compiler honours at a closed port). Fonts are
typst's own embedded ones, so documents look the same on every machine.
"""

from __future__ import annotations

import io
import tempfile
from typing import Any

from backplane_documents.errors import RenderError


def _message(error: Exception, root: str) -> str:
    # The temporary root is an implementation detail; never show host paths.
    text = str(getattr(error, "message", None) or error).replace(root, "")
    hints = [str(hint) for hint in getattr(error, "hints", None) or []]
    return text + (f" (hint: {'; '.join(hints)})" if hints else "")


def render_typst(source: bytes, data_json: str, *, preview: bool = False) -> tuple[bytes, int]:
    """The PDF (or, for a preview, the first page as PNG) and its page count."""
    import typst

    # The stub ties ``root``'s type to ``input``'s (bytes here): call it untyped.
    compile_typst: Any = typst.compile
    with tempfile.TemporaryDirectory(prefix="typst-root-") as root:
        try:
            output: Any = compile_typst(
                source,
                root=root,
                format="png" if preview else "pdf",
                ignore_system_fonts=True,
                sys_inputs={"data": data_json},
                package_path=root,
                package_cache_path=root,
                ppi=72.0 if preview else None,
            )
        except typst.TypstError as error:
            raise RenderError(f"typst: {_message(error, root)}") from None
        except RuntimeError as error:
            raise RenderError(f"typst: {_message(error, root)}") from None
    if preview:
        pages = output if isinstance(output, list) else [output]
        return bytes(pages[0]), len(pages)
    return bytes(output), count_pdf_pages(bytes(output))


def count_pdf_pages(content: bytes) -> int:
    """How many pages a PDF has, read back with pypdf."""
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(content)).pages)
