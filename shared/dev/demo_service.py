"""A small, deterministic HTTP service that the examples' http steps call offline.

Every answer is a pure function of the request (plus, for payments and notifications,
what this app instance saw before), so examples and tests get stable results.
``GET /_stats`` counts calls per ``"METHOD /path"``; ``POST /_reset`` forgets all.
``DemoServer`` runs the app with uvicorn on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["DemoServer", "create_demo_app"]

Endpoint = Callable[[Request], Awaitable[Response]]

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_COUNTRIES = ("US", "FR", "DE", "JP", "BR", "IN", "GB", "CA")
_TIERS = ("gold", "silver", "bronze")
_CARRIERS = ("UPS", "FedEx", "DHL")
_FREE_MAIL = frozenset({"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me"})
_MAX_AMOUNT = 10_000


class _HttpError(Exception):
    """Answer ``status`` with a JSON ``{"error": code, ...}`` body."""

    def __init__(self, status: int, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.status = status
        self.body: dict[str, Any] = {"error": code, **extra}


@dataclass
class _DemoState:
    """What one app instance remembers between calls."""

    calls: Counter[str] = field(default_factory=Counter)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    charge_attempts: Counter[str] = field(default_factory=Counter)
    unkeyed_charges: int = 0
    notifications: list[dict[str, Any]] = field(default_factory=list)


def _digest(*parts: object) -> int:
    """A stable 60-bit integer from ``parts``."""
    text = "\x1f".join(json.dumps(part, sort_keys=True, default=str) for part in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def _token(prefix: str, *parts: object) -> str:
    return f"{prefix}_{_digest(*parts):015x}"


def _state(request: Request) -> _DemoState:
    state: _DemoState = request.app.state.demo
    return state


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _HttpError(400, "invalid_json") from exc
    if not isinstance(body, dict):
        raise _HttpError(400, "invalid_json", detail="expected a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _HttpError(422, "invalid_field", field=name)
    return value


def _number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _HttpError(422, "invalid_field", field=name)
    return value


async def health(request: Request) -> Response:
    """Liveness probe."""
    return JSONResponse({"status": "ok"})


async def reserve_inventory(request: Request) -> Response:
    """Reserve the items of an order."""
    body = await _body(request)
    order_id = _text(body, "orderId")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise _HttpError(422, "invalid_field", field="items")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
            raise _HttpError(422, "invalid_field", field=f"items/{index}/sku")
        qty = item.get("qty")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise _HttpError(422, "invalid_field", field=f"items/{index}/qty")
    return JSONResponse(
        {
            "reservationId": _token("res", order_id, items),
            "orderId": order_id,
            "reserved": True,
            "items": len(items),
            "units": sum(item["qty"] for item in items),
        }
    )


def _fail_times(request: Request) -> int:
    raw = request.headers.get("X-Demo-Fail-Times") or request.query_params.get("fail_times")
    try:
        return max(int(raw or 0), 0)
    except ValueError as exc:
        raise _HttpError(400, "invalid_fail_times") from exc


async def charge_payment(request: Request) -> Response:
    """Charge an order; idempotent per ``Idempotency-Key``, with injectable 503s."""
    state = _state(request)
    body = await _body(request)
    order_id = _text(body, "orderId")
    amount = _number(body, "amount")
    currency = body.get("currency") or "USD"
    key = request.headers.get("Idempotency-Key")
    attempt_key = key or f"order:{order_id}"
    state.charge_attempts[attempt_key] += 1
    attempt = state.charge_attempts[attempt_key]
    if attempt <= _fail_times(request):
        raise _HttpError(503, "temporarily_unavailable", attempt=attempt)
    if amount > _MAX_AMOUNT:
        raise _HttpError(402, "card_declined")
    request_fields = {"orderId": order_id, "amount": amount, "currency": currency}
    if key is not None and key in state.charges:
        stored = state.charges[key]
        if {name: stored[name] for name in request_fields} != request_fields:
            raise _HttpError(422, "idempotency_key_reused")
        return JSONResponse({**stored, "replayed": True})
    if key is None:
        state.unkeyed_charges += 1
        charge_id = _token("ch", order_id, amount, currency, state.unkeyed_charges)
    else:
        charge_id = _token("ch", key)
    charge = {"chargeId": charge_id, **request_fields, "status": "succeeded"}
    if key is not None:
        state.charges[key] = charge
    return JSONResponse({**charge, "replayed": False})


async def create_label(request: Request) -> Response:
    """Create a shipping label for an order."""
    body = await _body(request)
    order_id = _text(body, "orderId")
    if not body.get("address"):
        raise _HttpError(422, "invalid_field", field="address")
    number = _digest(order_id, body["address"])
    return JSONResponse(
        {
            "trackingNumber": f"1Z{number % 10**12:012d}",
            "carrier": _CARRIERS[number % len(_CARRIERS)],
            "orderId": order_id,
        }
    )


async def get_customer(request: Request) -> Response:
    """A deterministic customer profile; the id ``missing`` does not exist."""
    customer_id = request.path_params["customer_id"]
    if customer_id == "missing":
        raise _HttpError(404, "not_found", id=customer_id)
    number = _digest("customer", customer_id)
    name = f"{_FIRST[number % len(_FIRST)]} {_LAST[(number >> 8) % len(_LAST)]}"
    return JSONResponse(
        {
            "id": customer_id,
            "name": name,
            "tier": _TIERS[(number >> 16) % len(_TIERS)],
            "country": _COUNTRIES[(number >> 24) % len(_COUNTRIES)],
        }
    )


async def notify(request: Request) -> Response:
    """Record a notification (``POST``) or list the recorded ones (``GET``)."""
    state = _state(request)
    if request.method == "GET":
        return JSONResponse({"notifications": state.notifications})
    body = await _body(request)
    fields = {name: _text(body, name) for name in ("channel", "to", "message")}
    notification = {"id": f"ntf_{len(state.notifications) + 1:06d}", **fields}
    state.notifications.append(notification)
    return JSONResponse({"delivered": True, "id": notification["id"]})


async def sales_report(request: Request) -> Response:
    """Deterministic sales figures for ``?date=YYYY-MM-DD``."""
    day = request.query_params.get("date", "")
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError as exc:
        raise _HttpError(400, "invalid_date", detail="expected ?date=YYYY-MM-DD") from exc
    number = _digest("sales", day)
    orders = 50 + number % 451
    revenue = round(orders * (20 + (number >> 12) % 80) + ((number >> 24) % 100) / 100, 2)
    return JSONResponse(
        {"date": day, "orders": orders, "revenue": revenue, "topSku": f"SKU-{number % 1000:03d}"}
    )


async def enrich(request: Request) -> Response:
    """Company and lead score for an email address."""
    email = _text(await _body(request), "email").strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or "@" in domain:
        raise _HttpError(422, "invalid_field", field="email")
    company = None
    if domain not in _FREE_MAIL:
        company = domain.split(".")[0].replace("-", " ").replace("_", " ").title()
    return JSONResponse(
        {"email": email, "domain": domain, "company": company, "score": _digest(email) % 101}
    )


async def stats(request: Request) -> Response:
    """Calls per ``"METHOD /path"`` since start or the last reset."""
    calls = _state(request).calls
    return JSONResponse({"calls": dict(calls), "total": sum(calls.values())})


async def reset(request: Request) -> Response:
    """Forget every call, charge and notification."""
    request.app.state.demo = _DemoState()
    return JSONResponse({"reset": True})


def _counted(endpoint: Endpoint) -> Endpoint:
    """Count the call and turn ``_HttpError`` into its JSON answer."""

    async def wrapper(request: Request) -> Response:
        _state(request).calls[f"{request.method} {request.url.path}"] += 1
        try:
            return await endpoint(request)
        except _HttpError as error:
            return JSONResponse(error.body, status_code=error.status)

    wrapper.__name__ = endpoint.__name__
    wrapper.__doc__ = endpoint.__doc__
    return wrapper


def create_demo_app() -> Starlette:
    """Build a fresh demo app with its own empty state."""
    routes = [
        Route("/health", _counted(health), methods=["GET"]),
        Route("/inventory/reserve", _counted(reserve_inventory), methods=["POST"]),
        Route("/payments/charge", _counted(charge_payment), methods=["POST"]),
        Route("/shipping/label", _counted(create_label), methods=["POST"]),
        Route("/customers/{customer_id}", _counted(get_customer), methods=["GET"]),
        Route("/notify", _counted(notify), methods=["GET", "POST"]),
        Route("/reports/sales", _counted(sales_report), methods=["GET"]),
        Route("/enrich", _counted(enrich), methods=["POST"]),
        Route("/_stats", stats, methods=["GET"]),
        Route("/_reset", reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.demo = _DemoState()
    return app


class DemoServer:
    """Serve the demo app on 127.0.0.1 from a background thread (sync or async use)."""

    def __init__(self, app: Starlette | None = None, *, port: int = 0) -> None:
        self.app = app or create_demo_app()
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """Start serving and return the base URL (``http://127.0.0.1:PORT``)."""
        if self._server is not None:
            return self.url
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it keep-alive requests wait ~40 ms (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="demo-service", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the demo service did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join()
        if sock is not None:
            sock.close()

    async def astart(self) -> str:
        """``start()`` without blocking the running event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """``stop()`` without blocking the running event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> DemoServer:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()
