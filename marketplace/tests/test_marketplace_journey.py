"""Acceptances 1 and 5 of issue 24 against a real ``backplane serve``: a publisher approved by
an operator uploads a signed, checked, priced model that an operator approves; consumers
install it and call it through ``tritonclient``; 200 concurrent calls across 5 consumer tenants
are charged exactly what the tariffs say on their invoices, and the period's statement is the
consumers' charges less the platform's share, to the minor unit (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from marketplace_helpers import environ_for, iris_examples, priced_market, served

from backplane.testing import SeededTenant, close_invoice, invoke_cli, seed_tenant

pytestmark = pytest.mark.slow  # a real `backplane serve` process

PER_REQUEST, PER_ROW = 7, 3  # the tariffs priced_market sets
CONSUMERS, CALLS = 5, 200


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def plan_of_calls() -> list[tuple[int, str, int]]:
    """(consumer, model, rows) of each call: every consumer calls both models, 1-3 rows."""
    return [(i % CONSUMERS, "species" if i % 2 else "rows", 1 + i % 3) for i in range(CALLS)]


async def call_all(address: str, consumers: list[SeededTenant]) -> list[int]:
    features = iris_examples(1)[0]["inputs"]["float_input"][0]
    limits = httpx.Limits(max_connections=CALLS)
    async with httpx.AsyncClient(base_url=f"http://{address}", limits=limits, timeout=60) as http:

        async def one(consumer: int, model: str, rows: int) -> int:
            tensor = {"name": "float_input", "datatype": "FP32", "shape": [rows, 4]}
            body = {"inputs": [tensor | {"data": features * rows}]}
            answer = await http.post(
                f"/v2/models/{model}/infer", json=body, headers=consumers[consumer].headers
            )
            return answer.status_code

        return await asyncio.gather(*(one(*call) for call in plan_of_calls()))


def test_publish_install_call_through_tritonclient_invoice_and_statement_exactly(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str], tmp_path: Path
) -> None:
    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ)
    consumers = [seed_tenant(backplane_app, f"consumer-{i}") for i in range(CONSUMERS)]
    for consumer in consumers:
        for listing, name in ((market["per_request"], "species"), (market["per_row"], "rows")):
            body = {"listing_id": listing, "name": name}
            made = client.post("/api/marketplace/installs", json=body, headers=consumer.headers)
            assert made.status_code == 201, made.text

    example = iris_examples(1)[0]
    with served(backplane_environ, tmp_path / "serve.log") as address:
        triton_client = triton.InferenceServerClient(url=address)
        tensor = triton.InferInput("float_input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.asarray(example["inputs"]["float_input"], np.float32))
        result = triton_client.infer("species", [tensor], headers=consumers[0].headers)
        assert result.as_numpy("label").tolist() == example["outputs"]["label"]
        statuses = asyncio.run(call_all(address, consumers))
    assert statuses == [200] * CALLS

    expected = [0] * CONSUMERS
    expected[0] += PER_REQUEST  # the tritonclient call
    for consumer, model, rows in plan_of_calls():
        expected[consumer] += PER_REQUEST if model == "species" else PER_ROW * rows
    charged = []
    for consumer in consumers:
        invoice = close_invoice(backplane_app, consumer)
        items = [li.amount for li in invoice.lines if li.kind == "item"]
        assert len(items) == 2  # one line per listing version used
        charged.append(sum(items))
    assert charged == expected

    period = f"{invoice.period_start:%Y-%m}"
    closed = invoke_cli(
        "marketplace",
        "close-period",
        "--period",
        period,
        "--include-running",
        environ=backplane_environ,
    )
    assert closed.exit_code == 0, closed.output
    [statement] = client.get("/api/marketplace/statements").json()
    gross = sum(expected)
    share = (gross * 20 + 50) // 100
    assert (statement["gross"], statement["platform_share"], statement["net"]) == (
        gross,
        share,
        gross - share,
    )
    assert statement["net"] == sum(charged) - statement["platform_share"]
    per_listing = {item["slug"]: item for item in statement["listings"]}
    species_calls = 1 + sum(1 for _, model, _ in plan_of_calls() if model == "species")
    assert per_listing["iris-per-request"]["requests"] == species_calls
    assert per_listing["iris-per-request"]["consumers"] == CONSUMERS
    row_calls = [rows for _, model, rows in plan_of_calls() if model == "rows"]
    assert per_listing["iris-per-row"]["rows"] == sum(row_calls)
