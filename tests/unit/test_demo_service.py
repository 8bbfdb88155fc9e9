"""The offline demo service: deterministic answers, idempotent payments, the server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from shared.dev.demo_service import DemoServer, create_demo_app


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as demo:
        yield demo


@pytest.fixture
def client(server: DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        http.post("/_reset").raise_for_status()
        yield http


def charge(
    client: httpx.Client, key: str | None, amount: float = 42.5, fail_times: int | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    if fail_times is not None:
        headers["X-Demo-Fail-Times"] = str(fail_times)
    body = {"orderId": "o-1", "amount": amount, "currency": "EUR"}
    return client.post("/payments/charge", json=body, headers=headers)


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_reserve_inventory_is_deterministic(client: httpx.Client) -> None:
    body = {"orderId": "o-1", "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
    first = client.post("/inventory/reserve", json=body).json()
    assert first == client.post("/inventory/reserve", json=body).json()
    assert first["reserved"] is True
    assert (first["orderId"], first["items"], first["units"]) == ("o-1", 2, 3)
    other = client.post("/inventory/reserve", json={**body, "orderId": "o-2"}).json()
    assert other["reservationId"] != first["reservationId"]


def test_reserve_inventory_validates(client: httpx.Client) -> None:
    bad_qty = {"orderId": "o-1", "items": [{"sku": "A", "qty": 0}]}
    response = client.post("/inventory/reserve", json=bad_qty)
    assert response.status_code == 422
    assert response.json() == {"error": "invalid_field", "field": "items/0/qty"}
    not_json = client.post("/inventory/reserve", content=b"{nope")
    assert (not_json.status_code, not_json.json()["error"]) == (400, "invalid_json")


def test_charge_replays_under_the_same_idempotency_key(client: httpx.Client) -> None:
    first = charge(client, "key-1")
    second = charge(client, "key-1")
    assert first.status_code == second.status_code == 200
    assert first.json()["replayed"] is False
    assert second.json()["replayed"] is True
    assert first.json()["chargeId"] == second.json()["chargeId"]
    assert charge(client, "key-2").json()["chargeId"] != first.json()["chargeId"]
    reused = charge(client, "key-1", amount=99)
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")


def test_charge_without_key_is_a_new_charge_each_time(client: httpx.Client) -> None:
    assert charge(client, None).json()["chargeId"] != charge(client, None).json()["chargeId"]


def test_charge_fails_the_first_n_calls_per_key(client: httpx.Client) -> None:
    statuses = [charge(client, "k", fail_times=2).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert charge(client, "k", fail_times=2).json()["replayed"] is True
    other = charge(client, "k2", fail_times=2)
    assert other.status_code == 503  # counted per key
    query = client.post(
        "/payments/charge?fail_times=1",
        json={"orderId": "o-9", "amount": 1},
        headers={"Idempotency-Key": "q"},
    )
    assert query.status_code == 503


def test_large_charges_are_declined(client: httpx.Client) -> None:
    response = charge(client, "big", amount=10_000.01)
    assert (response.status_code, response.json()) == (402, {"error": "card_declined"})
    assert charge(client, "limit", amount=10_000).status_code == 200


def test_shipping_label(client: httpx.Client) -> None:
    body = {"orderId": "o-1", "address": {"city": "Paris"}}
    first = client.post("/shipping/label", json=body).json()
    assert first == client.post("/shipping/label", json=body).json()
    assert first["trackingNumber"].startswith("1Z") and len(first["trackingNumber"]) == 14
    assert first["carrier"] in {"UPS", "FedEx", "DHL"}
    assert client.post("/shipping/label", json={"orderId": "o-1"}).status_code == 422


def test_customers_are_deterministic_and_missing_is_404(client: httpx.Client) -> None:
    profile = client.get("/customers/c-1").json()
    assert profile == client.get("/customers/c-1").json()
    assert set(profile) == {"id", "name", "tier", "country"}
    tiers = {client.get(f"/customers/c-{index}").json()["tier"] for index in range(30)}
    assert tiers == {"gold", "silver", "bronze"}
    missing = client.get("/customers/missing")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_notify_keeps_notifications(client: httpx.Client) -> None:
    sent = [
        client.post("/notify", json={"channel": "email", "to": f"u{i}@x.io", "message": "hi"})
        for i in range(2)
    ]
    assert [response.json()["delivered"] for response in sent] == [True, True]
    listed = client.get("/notify").json()["notifications"]
    assert [item["to"] for item in listed] == ["u0@x.io", "u1@x.io"]
    assert [item["id"] for item in listed] == [response.json()["id"] for response in sent]


def test_sales_report(client: httpx.Client) -> None:
    report = client.get("/reports/sales", params={"date": "2025-03-01"}).json()
    assert report == client.get("/reports/sales", params={"date": "2025-03-01"}).json()
    assert report["date"] == "2025-03-01"
    assert report["orders"] > 0 and report["revenue"] > 0
    assert report["topSku"].startswith("SKU-")
    assert client.get("/reports/sales", params={"date": "01/03/2025"}).status_code == 400


def test_enrich(client: httpx.Client) -> None:
    work = client.post("/enrich", json={"email": "Jane@Acme-Corp.com"}).json()
    assert work["domain"] == "acme-corp.com"
    assert work["company"] == "Acme Corp"
    assert 0 <= work["score"] <= 100
    assert work == client.post("/enrich", json={"email": "jane@acme-corp.com"}).json()
    assert client.post("/enrich", json={"email": "x@gmail.com"}).json()["company"] is None
    assert client.post("/enrich", json={"email": "nope"}).status_code == 422


def test_stats_count_calls_per_path_and_reset_clears(client: httpx.Client) -> None:
    charge(client, "k")
    charge(client, "k")
    client.get("/customers/missing")
    calls = client.get("/_stats").json()["calls"]
    assert calls == {"POST /payments/charge": 2, "GET /customers/missing": 1}
    client.post("/_reset")
    assert client.get("/_stats").json() == {"calls": {}, "total": 0}
    assert charge(client, "k").json()["replayed"] is False


def test_each_app_has_its_own_state() -> None:
    with TestClient(create_demo_app()) as first, TestClient(create_demo_app()) as second:
        first.post("/notify", json={"channel": "sms", "to": "1", "message": "m"})
        assert len(first.get("/notify").json()["notifications"]) == 1
        assert second.get("/notify").json()["notifications"] == []


async def test_server_from_async_code_and_stop_frees_the_port() -> None:
    async with DemoServer() as demo:
        url = demo.url
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/health")).status_code == 200
    with httpx.Client(base_url=url) as http, pytest.raises(httpx.ConnectError):
        http.get("/health")
