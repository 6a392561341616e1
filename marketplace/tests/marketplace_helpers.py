"""Helpers shared by the marketplace plugin's tests: the environment, signing keys, logins."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar import Litestar
from litestar.testing import TestClient

from backplane.testing import CHEAP_PASSWORD_HASHING, TEST_PASSWORD, SeededTenant
from backplane_marketplace.signing import key_proof_message

BASE = "/api/marketplace"
PUBLISHER = f"{BASE}/publisher"
REVIEW = f"{BASE}/review"


def base_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "marketplace",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        **CHEAP_PASSWORD_HASHING,
    }


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def public_text(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def key_body(key: Ed25519PrivateKey, publisher_id: str) -> dict[str, str]:
    """A registration body for ``key`` with a valid proof of possession."""
    text = public_text(key)
    proof = key.sign(key_proof_message(uuid.UUID(publisher_id), text))
    return {"public_key": text, "proof": b64(proof)}


def bearer(client: TestClient[Litestar], tenant: SeededTenant) -> dict[str, str]:
    """Headers with an access token of ``tenant``'s owner (a user's session, not an API key)."""
    login = client.post(
        "/api/auth/login",
        json={"email": tenant.email, "password": TEST_PASSWORD, "tenant": tenant.slug},
        headers={"Authorization": ""},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def apply(client: TestClient[Litestar], headers: dict[str, str], name: str) -> dict[str, Any]:
    made = client.post(PUBLISHER, json={"display_name": name}, headers=headers)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    assert body["state"] == "pending"
    return body


def iris_artifact() -> bytes:
    """The kernel's example iris classifier (built by scripts/build_example_models.py)."""
    from importlib.resources import files

    return (files("backplane.models") / "iris_classifier.onnx").read_bytes()


def iris_examples(rows: int = 2) -> list[dict[str, Any]]:
    """Example requests with the outputs the model gives (recorded when it was built)."""
    from importlib.resources import files

    import numpy as np

    with np.load(str(files("backplane.models") / "expected.npz")) as expected:
        inputs = expected["iris_classifier__input"][:rows]
        labels = expected["iris_classifier__label"][:rows]
        probabilities = expected["iris_classifier__probabilities"][:rows]
    return [
        {
            "inputs": {"float_input": [inputs[i].tolist()]},
            "outputs": {"label": [int(labels[i])], "probabilities": [probabilities[i].tolist()]},
            "tolerance": 1e-4,
        }
        for i in range(rows)
    ]


def version_body(
    key: Ed25519PrivateKey, artifact: bytes, version: str = "1.0.0", **extra: Any
) -> dict[str, Any]:
    import hashlib

    from backplane_marketplace.signing import artifact_message

    signature = key.sign(artifact_message(hashlib.sha256(artifact).hexdigest()))
    return {
        "version": version,
        "artifact": b64(artifact),
        "signature": b64(signature),
        "examples": iris_examples(),
        **extra,
    }


LISTING = {
    "slug": "iris-species",
    "title": "Iris species",
    "task": "classification",
    "license": "Apache-2.0",
    "description": "Logistic regression on the iris measurements",
    "intended_use": "teaching",
    "limitations": "three species only",
    "tags": ["tabular", "demo"],
}


def environ_for(request: Any, tmp_path: Path) -> dict[str, str]:
    """For a fixture parametrised ``["sqlite", "postgres"]``."""
    environ = base_environ(tmp_path)
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def priced_market(
    app: Any, client: TestClient[Litestar], environ: dict[str, str], **listing_fields: Any
) -> dict[str, Any]:
    """The client's tenant an approved publisher with two approved listings of the iris model:
    ``per_request`` (7 minor units a request, version 1.0.0) and ``per_row`` (3 a row, version
    2.0.0), with ``listing_fields`` on both cards; their ids, the key, and an operator's
    session."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from backplane.testing import invoke_cli, seed_tenant

    applied = apply(client, {}, "Acme Models")
    ops = seed_tenant(app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=environ).exit_code == 0
    ops_session = bearer(client, ops)
    approve = f"{REVIEW}/publishers/{applied['id']}/approve"
    assert client.post(approve, json={}, headers=ops_session).status_code == 200
    key = Ed25519PrivateKey.generate()
    assert client.post(f"{PUBLISHER}/keys", json=key_body(key, applied["id"])).status_code == 201
    made: dict[str, Any] = {"key": key, "ops_session": ops_session}
    tariffs = (("per_request", 7, "1.0.0"), ("per_row", 3, "2.0.0"))
    for model, price, version in tariffs:
        slug = f"iris-{model.replace('_', '-')}"
        listing = client.post(f"{BASE}/listings", json=LISTING | {"slug": slug} | listing_fields)
        assert listing.status_code == 201, listing.text
        pricing = {"model": model, "unit_price": price}
        body = version_body(key, iris_artifact(), version, pricing=pricing)
        submitted = client.post(f"{BASE}/listings/{listing.json()['id']}/versions", json=body)
        assert submitted.status_code == 201, submitted.text
        decided = client.post(
            f"{REVIEW}/versions/{submitted.json()['id']}/approve", json={}, headers=ops_session
        )
        assert decided.status_code == 200, decided.text
        made[model] = listing.json()["id"]
    return made


class Server:
    """A ``backplane serve`` process on the test's database and a free loopback port."""

    def __init__(self, environ: dict[str, str], log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        command = [str(Path(sys.executable).parent / "backplane"), "serve", "--port", str(port)]
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, env={**os.environ, **environ}, stdout=out, stderr=out
            )
        self.address = f"127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{self.address}/health/ready", timeout=2).status_code == 200:
                    return self.address
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"backplane serve never got ready:\n{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)


@contextlib.contextmanager
def served(environ: dict[str, str], log: Path) -> Iterator[str]:
    """``backplane serve`` on the test's database, yielded once ready: ``host:port``."""
    server = Server(environ, log)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


FEDERATION = f"{BASE}/federation"


def federated_market(
    app: Any, client: TestClient[Litestar], environ: dict[str, str], *, local: bool = True
) -> dict[str, Any]:
    """The client's tenant an approved publisher with a free listing of the iris model opted
    in to federation (version 1.0.0 approved) and, if ``local``, one that is not (0.9.0);
    their ids and the key."""
    from backplane.testing import invoke_cli, seed_tenant

    applied = apply(client, {}, "Acme Models")
    ops = seed_tenant(app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=environ).exit_code == 0
    ops_session = bearer(client, ops)
    approve = f"{REVIEW}/publishers/{applied['id']}/approve"
    assert client.post(approve, json={}, headers=ops_session).status_code == 200
    key = Ed25519PrivateKey.generate()
    assert client.post(f"{PUBLISHER}/keys", json=key_body(key, applied["id"])).status_code == 201
    made: dict[str, Any] = {"key": key, "ops_session": ops_session, "publisher": applied["id"]}
    for slug, federated, version in (
        ("iris-federated", True, "1.0.0"),
        ("iris-local", False, "0.9.0"),
    ):
        listing = client.post(
            f"{BASE}/listings", json=LISTING | {"slug": slug, "federated": federated}
        )
        assert listing.status_code == 201, listing.text
        body = version_body(key, iris_artifact(), version, changelog="first")
        submitted = client.post(f"{BASE}/listings/{listing.json()['id']}/versions", json=body)
        assert submitted.status_code == 201, submitted.text
        decided = client.post(
            f"{REVIEW}/versions/{submitted.json()['id']}/approve", json={}, headers=ops_session
        )
        assert decided.status_code == 200, decided.text
        made[slug] = listing.json()["id"]
    return made
