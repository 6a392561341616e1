"""Trial allowances: a listing's first ``trial_units`` requests or rows per consumer tenant are
free, the rest billed at the tariff; exact under concurrent calls from several tenants, carried
over from earlier periods, shown on the invoice line (billed quantity x unit price == amount,
the free units named), and the publisher's statement equals the invoices."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from marketplace_helpers import environ_for, iris_examples, priced_market

from backplane.testing import close_invoice, invoke_cli, run_in_tenant, seed_tenant

INSTALLS = "/api/marketplace/installs"
TRIAL = 10  # free units per consumer tenant and listing
PRICE = {"per_request": 7, "per_row": 3}  # the tariffs priced_market sets


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path) | {"BACKPLANE_INFERENCE__METERING_OVERLAP_S": "0"}


def v2_body(rows: int) -> dict[str, Any]:
    features = iris_examples(1)[0]["inputs"]["float_input"][0]
    return {
        "inputs": [
            {"name": "float_input", "datatype": "FP32", "shape": [rows, 4], "data": features * rows}
        ]
    }


def item_lines(invoice: Any) -> list[Any]:
    return [line for line in invoice.lines if line.kind == "item"]


def test_trial_allowance_is_exact_under_concurrency_and_shown_on_invoices(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ, trial_units=TRIAL)
    shown = client.get("/api/marketplace/catalog").json()
    assert {entry["trial_units"] for entry in shown} == {TRIAL}
    # Five consumers, each calling the per-request listing a different number of times, all
    # at once; consumer 4 has also used 6 units of its trial in an earlier period.
    calls = [3, 10, 11, 17, 8]
    consumers = [seed_tenant(backplane_app, f"consumer{i}") for i in range(len(calls))]
    for consumer in consumers:
        made = client.post(
            INSTALLS,
            json={"listing_id": market["per_request"], "name": "species"},
            headers=consumer.headers,
        )
        assert made.status_code == 201, made.text

    async def earlier_use(kernel: Any) -> None:
        from sqlalchemy import select

        from backplane_marketplace.models import Listing, ListingVersion
        from backplane_marketplace.money_models import Charge

        listing = await kernel.db.get(Listing, uuid.UUID(market["per_request"]))
        version = await kernel.db.scalar(
            select(ListingVersion.id).where(ListingVersion.listing_id == listing.id)
        )
        kernel.db.add(
            Charge(
                tenant_id=kernel.tenant_id,
                period_start=datetime(2000, 1, 1, tzinfo=UTC),
                publisher_id=listing.publisher_id,
                listing_id=listing.id,
                version_id=version,
                requests=6,
                rows=6,
                price_model="per_request",
                unit_price=PRICE["per_request"],
                amount=0,
                currency="USD",
                trial_units=6,
            )
        )
        await kernel.db.flush()

    run_in_tenant(backplane_app, consumers[4], earlier_use, plugin="marketplace")

    jobs = [consumer for consumer, n in zip(consumers, calls, strict=True) for _ in range(n)]

    def call(consumer: Any) -> int:
        answer = client.post("/v2/models/species/infer", json=v2_body(1), headers=consumer.headers)
        return int(answer.status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(call, jobs)) == {200}

    left = [TRIAL] * 4 + [TRIAL - 6]
    billed = []
    for consumer, n, allowance in zip(consumers, calls, left, strict=True):
        invoice = close_invoice(backplane_app, consumer)
        lines = item_lines(invoice)
        covered = min(n, allowance)
        amount = (n - covered) * PRICE["per_request"]
        billed.append(amount)
        assert len(lines) == 1, lines  # a line even when the trial covered every call
        line = lines[0]
        assert (line.amount, line.quantity) == (amount, str(n - covered))
        assert f"{n} requests ({covered} free in the trial)" in line.description
        assert int(line.quantity) * PRICE["per_request"] == line.amount
    assert billed == [0, 0, 7, 49, 28]

    closed = invoke_cli(
        "marketplace",
        "close-period",
        "--period",
        f"{datetime.now(UTC):%Y-%m}",
        "--include-running",
        environ=backplane_environ,
    )
    assert closed.exit_code == 0, closed.output
    statement = client.get("/api/marketplace/statements").json()[0]
    assert statement["gross"] == sum(billed)
    (entry,) = statement["listings"]
    assert (entry["requests"], entry["consumers"]) == (sum(calls), len(calls))


def test_a_per_row_trial_counts_rows_and_survives_reinstalling(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ, trial_units=5)
    consumer = seed_tenant(backplane_app, "consumer")
    body = {"listing_id": market["per_row"], "name": "rows"}
    made = client.post(INSTALLS, json=body, headers=consumer.headers)
    assert made.status_code == 201, made.text
    for rows in (3, 4):
        answer = client.post("/v2/models/rows/infer", json=v2_body(rows), headers=consumer.headers)
        assert answer.status_code == 200, answer.text
    # Uninstalling and installing again gives no new trial.
    assert (
        client.delete(f"{INSTALLS}/{made.json()['id']}", headers=consumer.headers).status_code
        == 204
    )
    again = client.post(INSTALLS, json=body, headers=consumer.headers)
    assert again.status_code == 201, again.text
    answer = client.post("/v2/models/rows/infer", json=v2_body(2), headers=consumer.headers)
    assert answer.status_code == 200, answer.text
    (line,) = item_lines(close_invoice(backplane_app, consumer))
    # 9 rows, 5 free, 4 billed at 3.
    assert (line.quantity, line.amount) == ("4", 4 * PRICE["per_row"])
    assert "9 rows (5 free in the trial)" in line.description
    bad = client.post(
        "/api/marketplace/listings",
        json={"slug": "neg", "title": "t", "task": "x", "license": "MIT", "trial_units": -1},
    )
    assert bad.status_code == 400, bad.text
