"""The one error rendering raises, so that every caller (a request, a bulk job's row, the CLI)
can turn any failure into a clear message: bad fields, a template error, a limit hit, a
sandbox breach attempt. Re-exported by :mod:`backplane_documents.rendering`."""

from __future__ import annotations


class RenderError(ValueError):
    """Rendering failed for a reason the caller can act on; ``str(error)`` says which.

    ``kind`` sorts failures for reports and HTTP statuses: ``fields`` (the data does not match
    the template's field schema: 400), ``template`` (the template itself fails, including a
    refused attempt to read files, import packages or run code: 422), ``limit`` (a render
    limit was hit: 422, the message names the setting)."""

    def __init__(self, message: str, *, kind: str = "template") -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[type[RenderError], tuple[str], dict[str, str]]:
        # Crosses the process boundary of the sandbox intact (kind included).
        return (type(self), (str(self),), {"kind": self.kind})
