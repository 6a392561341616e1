"""Issue 15, item 11: what the delivery history says of an attempt that got no answer. The
network library's messages may name the address connected to (what the tenant's host name
resolved to); the history shows a fixed phrase per kind of failure instead."""

from __future__ import annotations

import ssl

import httpx
import pytest

from backplane.billing.webhooks.sender import describe_failure

ADDRESS = "93.184.216.34"
REQUEST = httpx.Request("POST", f"https://{ADDRESS}/hook")


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` as it arrives: raised, with ``cause`` chained as httpx chains httpcore's."""
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001 - the point is to keep whatever was raised
        return caught


def _certificate_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_message = message
    return error


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (TimeoutError(), "timed out after 10 s"),
        (
            httpx.ReadTimeout(f"read from {ADDRESS} timed out", request=REQUEST),
            "timed out after 10 s",
        ),
        (
            httpx.ConnectError(
                f"[Errno 111] Connect call failed ('{ADDRESS}', 443)", request=REQUEST
            ),
            "could not connect to the endpoint",
        ),
        (
            _raised(
                httpx.ConnectError(f"TLS to {ADDRESS} failed", request=REQUEST),
                _certificate_error("certificate has expired"),
            ),
            "TLS handshake failed: certificate has expired",
        ),
        (
            _raised(
                httpx.ConnectError(f"TLS to {ADDRESS} failed", request=REQUEST),
                ssl.SSLError(1, f"[SSL] wrong version number talking to {ADDRESS}"),
            ),
            "TLS handshake failed",
        ),
        (
            httpx.RemoteProtocolError(f"{ADDRESS} sent garbage", request=REQUEST),
            "the endpoint's answer was not valid HTTP",
        ),
        (
            httpx.ReadError(f"connection to {ADDRESS} reset", request=REQUEST),
            "the connection failed during the request",
        ),
        (OSError(113, f"No route to host {ADDRESS}"), "the request failed (OSError)"),
    ],
)
def test_failures_are_described_without_the_address(failure: BaseException, said: str) -> None:
    assert describe_failure(failure, 10.0) == said
    assert ADDRESS not in said
