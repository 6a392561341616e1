"""The error the plugin raises for a request it cannot honour, with the HTTP status that says
whose fault it is; the controllers turn it into ``{"detail": ...}``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response


class MarketplaceError(ValueError):
    """A clear refusal: ``status`` (400, 403, 404, 409, 422) and a message naming the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _answer(_: Request[Any, Any, Any], error: MarketplaceError) -> Response[Any]:
    return Response({"status_code": error.status, "detail": str(error)}, status_code=error.status)


ERROR_HANDLERS: dict[int | type[Exception], Any] = {MarketplaceError: _answer}
TAGS = ["marketplace"]
