"""Text out of PDFs (text layer and OCR), images and DOCX files, under limits."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pypdf
import pytest
from processing_fixtures import docx_bytes, pdf_from_pages, png, scanned_image, scanned_pdf
from rapidfuzz.distance import Levenshtein

from backplane_documents.processing import ExtractionError, ProcessingLimits, extract
from backplane_documents.processing.extract import DOCX, PDF

LIMITS = ProcessingLimits()
INVOICE = [
    "Invoice number: INV-2024-0042",
    "Date of issue: 14 March 2024",
    "Bill to: Ada Lovelace, 12 Analytical Street, London",
    "Total amount due: 1,234.56 EUR",
    "Payment terms: net 30 days. Thank you for your business.",
]


def cer(expected: str, got: str) -> float:
    """Character error rate: edit distance over the expected text's length."""
    return Levenshtein.distance(expected, got) / len(expected)


def test_text_layer_comes_back_exactly() -> None:
    pages = [
        INVOICE,
        ["Grüße aus Zürich — naïve café, 42 € (net)", "Symbols: #hash $dollar <tag> & 'quotes'"],
        ["Last page"],
    ]
    extraction = extract(pdf_from_pages(pages), PDF, LIMITS)
    assert [page.text for page in extraction.pages] == ["\n".join(lines) for lines in pages]
    assert {page.method for page in extraction.pages} == {"text-layer"}
    assert [page.number for page in extraction.pages] == [1, 2, 3]


def test_scanned_image_is_read_by_ocr_with_few_errors() -> None:
    image = scanned_image(INVOICE)
    extraction = extract(png(image), "image/png", LIMITS)
    (page,) = extraction.pages
    expected = "\n".join(INVOICE)
    assert page.method == "ocr"
    assert cer(expected, page.text) < 0.05, page.text
    assert page.confidence is not None
    assert 0.5 < page.confidence <= 1


def test_pdf_page_without_text_layer_is_rasterised_and_read() -> None:
    scan = scanned_image(["Scanned page", "Reference: QX-778"], dpi=150)
    data = scanned_pdf([scan], dpi=150)
    assert pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text().strip() == ""
    steps: list[tuple[int, int]] = []
    extraction = extract(data, PDF, LIMITS, progress=lambda d, t: steps.append((d, t)))
    (page,) = extraction.pages
    assert page.method == "ocr"
    assert cer("Scanned page\nReference: QX-778", page.text) < 0.05, page.text
    assert steps == [(1, 1)]


def test_ocr_can_be_turned_off() -> None:
    data = scanned_pdf([scanned_image(["Nothing to see"], dpi=72)], dpi=72)
    (page,) = extract(data, PDF, LIMITS, ocr=False).pages
    assert (page.text, page.method) == ("", "text-layer")


def test_docx_paragraphs_tables_and_page_breaks() -> None:
    data = docx_bytes(
        ["Invoice number: INV-7", "\f", "Lines below"],
        table=[["Item", "Qty", "Price"], ["Widget", "2", "3.50"], ["Gadget", "1", "10.00"]],
    )
    extraction = extract(data, DOCX, LIMITS)
    assert [page.method for page in extraction.pages] == ["docx", "docx"]
    assert extraction.pages[0].text == "Invoice number: INV-7"
    assert (
        extraction.pages[1].text
        == "Lines below\nItem\tQty\tPrice\nWidget\t2\t3.50\nGadget\t1\t10.00"
    )
    assert extraction.tables == [
        [["Item", "Qty", "Price"], ["Widget", "2", "3.50"], ["Gadget", "1", "10.00"]]
    ]


@pytest.mark.parametrize(
    ("data", "media_type", "status", "words"),
    [
        (b"GIF89a", "image/gif", 415, "cannot be processed"),
        (b"%PDF-1.7 not really", PDF, 422, "not a readable PDF"),
        (b"PK\x03\x04 broken", DOCX, 422, "not a readable DOCX"),
        (b"\x89PNG\r\n\x1a\n broken", "image/png", 422, "not a readable image"),
    ],
)
def test_bad_files_are_refused_clearly(
    data: bytes, media_type: str, status: int, words: str
) -> None:
    with pytest.raises(ExtractionError, match=words) as caught:
        extract(data, media_type, LIMITS)
    assert caught.value.status_code == status


def test_page_and_size_limits() -> None:
    data = pdf_from_pages([["one"], ["two"], ["three"]])
    with pytest.raises(ExtractionError, match=r"3 pages; documents\.processing\.max_pages is 2"):
        extract(data, PDF, ProcessingLimits(max_pages=2))
    with pytest.raises(ExtractionError, match="max_bytes") as caught:
        extract(data, PDF, ProcessingLimits(max_bytes=100))
    assert caught.value.status_code == 413


def test_encrypted_pdf_is_refused() -> None:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf_from_pages([["secret"]])))
    writer.encrypt("password")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExtractionError, match="encrypted"):
        extract(out.getvalue(), PDF, LIMITS)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels and holds almost no data: a bomb's head."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ExtractionError, match="pixels") as caught:
        extract(_png_header_only(60_000, 60_000), "image/png", LIMITS)
    assert caught.value.status_code == 413
    with pytest.raises(ExtractionError, match="max_image_pixels"):
        extract(_png_header_only(3000, 3000), "image/png", ProcessingLimits(max_image_pixels=10**6))


def test_docx_zip_bomb_is_refused_before_inflating() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<" + b" " * 5_000_000)
    with pytest.raises(ExtractionError, match="unpacks to") as caught:
        extract(out.getvalue(), DOCX, ProcessingLimits(max_bytes=100_000))
    assert caught.value.status_code == 413


def test_ocr_time_limit_kills_the_process() -> None:
    data = png(scanned_image(INVOICE, dpi=100))
    with pytest.raises(ExtractionError, match="ocr_time_limit_s"):
        extract(data, "image/png", ProcessingLimits(ocr_time_limit_s=0.2))


def test_ocr_memory_limit_fails_clearly() -> None:
    data = png(scanned_image(INVOICE, dpi=100))
    with pytest.raises(ExtractionError, match="ocr_memory_bytes") as caught:
        extract(data, "image/png", ProcessingLimits(ocr_memory_bytes=150 * 2**20))
    assert caught.value.status_code == 413


def test_too_many_scanned_pages() -> None:
    blank = scanned_image(["x"], dpi=30)
    data = scanned_pdf([blank, blank, blank], dpi=30)
    with pytest.raises(ExtractionError, match="3 pages need OCR"):
        extract(data, PDF, ProcessingLimits(max_ocr_pages=2))
