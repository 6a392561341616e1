"""Acceptance 4 of issue 24: two ``backplane serve`` processes on loopback, each with its own
SQLite database. The second subscribes to the first's catalog (the key pinned from the
first's CLI), a tenant there installs a listing (artifact fetched, SHA-256 and publisher
signature verified) and calls it through V2 on the second; a catalog or an artifact changed
in transit (by a proxy between the two) is refused, and nothing is stored."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from marketplace_helpers import (
    CHEAP_PASSWORD_HASHING,
    FEDERATION,
    Server,
    federated_market,
    iris_examples,
)

from backplane.testing import TEST_PASSWORD, invoke_cli, migrated_deployment, seed_tenant

pytestmark = pytest.mark.slow  # two real `backplane serve` processes

FAST = {"BACKPLANE_PLUGIN__MARKETPLACE__LATENCY_RUNS": "2"}  # the review's timing is not tested


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    from marketplace_helpers import base_environ

    return base_environ(tmp_path) | FAST


class Tamper:
    """An HTTP proxy to ``upstream`` that flips one byte of what it relays when ``mode``
    names the kind of document (``catalog`` or ``artifact``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "none"
        self.seen: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append(self.path)
                answer = httpx.get(f"http://{owner.upstream}{self.path}", timeout=30)
                body = bytearray(answer.content)
                kind = "catalog" if self.path.endswith("/catalog") else "artifact"
                if owner.mode == kind and body:
                    if kind == "catalog":  # a changed title: still valid JSON
                        body = bytearray(bytes(body).replace(b"Iris species", b"Iris specie5"))
                    else:
                        body[len(body) // 2] ^= 0x01
                self.send_response(answer.status_code)
                for name in ("content-type", "backplane-catalog-signature"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(bytes(body))

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[Tamper]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def second_deployment(tmp_path: Path) -> tuple[dict[str, str], Any, Any]:
    """Another data directory (its own SQLite database and secret key), migrated, with an
    operator and a consumer tenant."""
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "second"),
        "BACKPLANE_PLUGINS": "marketplace",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        **CHEAP_PASSWORD_HASHING,
        **FAST,
    }
    plugins = migrated_deployment(environ)
    ops = seed_tenant(plugins, "enterprise-ops", "ops@enterprise.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=environ).exit_code == 0
    return environ, ops, seed_tenant(plugins, "enterprise-team")


def test_a_second_deployment_subscribes_installs_verifies_and_serves(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str], tmp_path: Path
) -> None:
    federated_market(backplane_app, backplane_client, backplane_environ, local=False)
    shown = invoke_cli("marketplace", "federation", "key", environ=backplane_environ)
    assert shown.exit_code == 0, shown.output
    pinned = shown.output.split("public key:")[1].split()[0]
    second_environ, ops, team = second_deployment(tmp_path)
    example = iris_examples(1)[0]
    started = time.monotonic()
    tensor = {"name": "float_input", "datatype": "FP32", "shape": [1, 4]}
    infer = {"inputs": [tensor | {"data": example["inputs"]["float_input"][0]}]}

    servers = [
        Server(backplane_environ, tmp_path / "first.log"),
        Server(second_environ, tmp_path / "second.log"),
    ]
    try:
        first, second = (server.wait_ready() for server in servers)  # started together
        print(f"servers ready after {time.monotonic() - started:.1f} s")
        with (
            Tamper(first).running() as proxy,
            httpx.Client(base_url=f"http://{second}", timeout=60) as http,
        ):
            subscription = check_federation(http, proxy, ops, team, pinned, second, infer)
            # The operator's CLI on the second deployment: a tampered catalog is refused on
            # refresh too, an intact one accepted.
            proxy.mode = "catalog"
            refresh = ("marketplace", "federation", "refresh", subscription)
            refused = invoke_cli(*refresh, environ=second_environ)
            assert refused.exit_code != 0
            assert "does not verify with the pinned catalog key" in refused.output
            proxy.mode = "none"
            assert invoke_cli(*refresh, environ=second_environ).exit_code == 0
            listed = invoke_cli("marketplace", "federation", "list", environ=second_environ)
            assert f"{subscription} http://{proxy.address}" in listed.output
            # The model runs on the second deployment: the first one stopped, it still answers.
            servers[0].stop()
            again = http.post("/v2/models/iris/infer", json=infer, headers=team.headers)
            assert again.status_code == 200, again.text
    finally:
        for server in servers:
            server.stop()


def check_federation(
    http: httpx.Client,
    proxy: Tamper,
    ops: Any,
    team: Any,
    pinned: str,
    second: str,
    infer: dict[str, Any],
) -> str:
    """The subscription's id."""
    example = iris_examples(1)[0]
    login = http.post(
        "/api/auth/login",
        json={"email": ops.email, "password": TEST_PASSWORD, "tenant": ops.slug},
    )
    assert login.status_code == 200, login.text
    operator = {"Authorization": f"Bearer {login.json()['access_token']}"}
    subscriptions = f"{FEDERATION}/subscriptions"

    # A catalog changed in transit: refused, nothing stored.
    proxy.mode = "catalog"
    body = {"url": f"http://{proxy.address}", "public_key": pinned}
    tampered = http.post(subscriptions, json=body, headers=operator)
    assert tampered.status_code == 502, tampered.text
    assert "does not verify with the pinned catalog key" in tampered.json()["detail"]
    assert http.get(subscriptions, headers=operator).json() == []
    assert proxy.seen == ["/api/marketplace/federation/catalog"]

    # The first deployment's own catalog under another key: refused as well.
    other_key = httpx.get(f"http://{second}{FEDERATION}/key").json()["public_key"]
    wrong = http.post(subscriptions, json=body | {"public_key": other_key}, headers=operator)
    assert wrong.status_code == 502, wrong.text

    # Untouched: subscribed, the listing browsable by the second deployment's tenants.
    proxy.mode = "none"
    made = http.post(subscriptions, json=body, headers=operator)
    assert made.status_code == 201, made.text
    assert made.json()["listings"] == 1
    [listing] = http.get(f"{FEDERATION}/listings", headers=team.headers).json()
    assert listing["slug"] == "iris-federated"
    assert listing["title"] == "Iris species"

    # An artifact changed in transit: refused, no model, no install.
    proxy.mode = "artifact"
    install = {"listing_id": listing["id"], "name": "iris"}
    refused = http.post(f"{FEDERATION}/installs", json=install, headers=team.headers)
    assert refused.status_code == 502, refused.text
    assert "changed in transit" in refused.json()["detail"]
    assert http.get(f"{FEDERATION}/installs", headers=team.headers).json() == []
    missing = http.post("/v2/models/iris/infer", json=infer, headers=team.headers)
    assert missing.status_code == 404

    # Untouched: installed, verified, and served by the second deployment.
    proxy.mode = "none"
    installed = http.post(f"{FEDERATION}/installs", json=install, headers=team.headers)
    assert installed.status_code == 201, installed.text
    assert installed.json()["sha256"] == listing["versions"][0]["sha256"]
    called = http.post("/v2/models/iris/infer", json=infer, headers=team.headers)
    assert called.status_code == 200, called.text
    outputs = {o["name"]: o["data"] for o in called.json()["outputs"]}
    assert outputs["label"] == example["outputs"]["label"]
    return str(made.json()["id"])
