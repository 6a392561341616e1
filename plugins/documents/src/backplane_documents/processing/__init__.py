"""Document processing: text and fields out of uploaded PDFs, images and DOCX files.

Pure functions (no database): :func:`extract` turns bytes into text per page (text layer, OCR
under limits, DOCX paragraphs and tables), :func:`extract_fields` turns that text into a
template's typed fields by rules. The routes and the bulk job build on these.
"""

from backplane_documents.processing.extract import SUPPORTED_TYPES, extract
from backplane_documents.processing.fields import FieldsResult, extract_fields
from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.results import Extraction, PageText
from backplane_documents.processing.rules import RuleSet, parse_rules

__all__ = [
    "SUPPORTED_TYPES",
    "Extraction",
    "ExtractionError",
    "FieldsResult",
    "PageText",
    "ProcessingLimits",
    "RuleSet",
    "extract",
    "extract_fields",
    "parse_rules",
]
