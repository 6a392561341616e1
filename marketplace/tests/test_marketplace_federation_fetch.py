"""The subscribing side's fetching and catalog checks, against scripted HTTP answers (httpx's
mock transport): size and time limits, non-200 answers, a catalog signed by the pinned key but
carrying a broken publisher signature, another deployment's key, malformed documents."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import b64, iris_artifact, public_text

from backplane import DeploymentKey
from backplane_marketplace import federation, signing
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.settings import MarketplaceSettings

SETTINGS = MarketplaceSettings(federation_timeout_s=0.5, federation_max_catalog_bytes=4096)
CLIENT = httpx.AsyncClient  # before any test replaces it
DEPLOYMENT = DeploymentKey("a test installation's secret", "marketplace", "catalog")


def serve(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    class Scripted(CLIENT):  # type: ignore[misc,valid-type]
        def __init__(self, **kwargs: Any) -> None:
            kwargs.pop("trust_env", None)
            super().__init__(transport=httpx.MockTransport(answer), **kwargs)

    monkeypatch.setattr("backplane_marketplace.federation.httpx.AsyncClient", Scripted)


def catalog_body(signature: str | None = None, **listing: Any) -> bytes:
    publisher = Ed25519PrivateKey.generate()
    sha = hashlib.sha256(iris_artifact()).hexdigest()
    version = {
        "version": "1.0.0",
        "sha256": sha,
        "size_bytes": len(iris_artifact()),
        "signature": signature or b64(publisher.sign(signing.artifact_message(sha))),
        "public_key": public_text(publisher),
        "key_fingerprint": signing.fingerprint(public_text(publisher)),
        "inputs": [],
        "outputs": [],
        "artifact": federation.ARTIFACT_PATH + sha,
    }
    document = {
        "format": "backplane.marketplace.catalog.v1",
        "deployment": "upstream",
        "key_fingerprint": signing.fingerprint(DEPLOYMENT.public_key),
        "issued_at": datetime.now(UTC).isoformat(),
        "listings": [
            {
                "id": "6f1f0bd6-8f3c-4a55-9d1c-6f0a8f2b1a10",
                "slug": "iris",
                "title": "Iris",
                "task": "classification",
                "license": "MIT",
                "tags": [],
                "publisher": {"id": "6f1f0bd6-8f3c-4a55-9d1c-6f0a8f2b1a11", "display_name": "A"},
                "versions": [version],
            }
            | listing
        ],
    }
    return msgspec.json.encode(document)


def signed(body: bytes, key: DeploymentKey = DEPLOYMENT) -> httpx.Response:
    signature = key.sign(federation.CATALOG_DOMAIN + body)
    return httpx.Response(200, content=body, headers={federation.SIGNATURE_HEADER: signature})


def refused(coro: Any) -> MarketplaceError:
    with pytest.raises(MarketplaceError) as caught:
        asyncio.run(coro)
    return caught.value


def test_a_signed_catalog_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, lambda request: signed(catalog_body()))
    catalog = asyncio.run(federation.fetch_catalog("http://up", DEPLOYMENT.public_key, SETTINGS))
    assert [listing.slug for listing in catalog.listings] == ["iris"]


def test_catalogs_that_must_be_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    body = catalog_body()
    changed = body.replace(b'"Iris"', b'"Irid"')
    assert changed != body
    other = DeploymentKey("another installation", "marketplace", "catalog")
    cases: list[tuple[Callable[[httpx.Request], httpx.Response], str]] = [
        (lambda r: httpx.Response(200, content=body), "carries no"),
        (lambda r: signed(body, other), "does not verify with the pinned"),
        (  # changed in transit, the genuine signature kept
            lambda r: httpx.Response(200, content=changed, headers=signed(body).headers),
            "does not verify with the pinned",
        ),
        (lambda r: signed(catalog_body(signature=b64(b"x" * 64))), "publisher's signature"),
        (lambda r: signed(catalog_body(extra="field")), "malformed"),
        (lambda r: signed(b"{" * 5000), "larger than the 4096 bytes"),
        (lambda r: httpx.Response(404, content=b"{}"), "answered 404"),
        (lambda r: httpx.Response(302, headers={"location": "http://elsewhere/"}), "answered 302"),
    ]
    for answer, reason in cases:
        serve(monkeypatch, answer)
        error = refused(federation.fetch_catalog("http://up", DEPLOYMENT.public_key, SETTINGS))
        assert error.status == 502, reason
        assert reason in str(error)


def test_a_slow_trickle_is_cut_off_by_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield b" "

    serve(monkeypatch, lambda request: httpx.Response(200, content=trickle()))
    error = refused(federation.fetch("http://up/x", 10_000, SETTINGS, "the catalog"))
    assert error.status == 504
    assert "federation_timeout_s" in str(error)


def test_an_unreachable_deployment_is_a_clear_502(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    serve(monkeypatch, down)
    error = refused(federation.fetch("http://up/x", 10, SETTINGS, "the artifact"))
    assert error.status == 502
    assert "could not fetch http://up/x" in str(error)
