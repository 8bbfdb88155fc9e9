"""The chaos suite's counter service: an upstream that records every request it gets.

``POST /effect`` with a JSON body ``{"execution": id, "step": name, "item": n}`` and an
``Idempotency-Key`` header applies one *effect* (think: a charge) for that key, unless
the key was seen before, in which case it answers the first answer again and applies
nothing (what an idempotent upstream does). Faults, drawn per request:

- latency: a uniform delay up to ``--latency`` seconds, and a longer one (``--slow``
  seconds) with probability ``--slow-rate``;
- ``--fail-rate``: a 503 answered *before* the effect (nothing happened); a quarter of
  them (``--ambiguous-share``) are answered *after* the effect was applied (the call
  landed, the answer was lost: only the same key on the next try avoids a second
  effect).

Every request is counted; ``GET /_report`` returns, per logical step
(``execution|step|item``), the keys under which an effect was applied and how many
requests each key got. A logical step with effects under two keys is a doubled
effect. ``POST /_faults`` changes the faults while running (``{"failRate": 0}``;
``{"hold": 1.0}``: every answer takes at least 1 s).

With ``--forward URL``, ``POST /forward/<path>`` also relays task deliveries to
``URL/<path>`` (headers and body as they came) and answers what it answered; with
probability ``--duplicate-rate`` it sends a second copy of the delivery alongside
(the emulators' run: the Cloud Tasks emulator never delivers twice, real Cloud Tasks
may).

Run: ``python bench/_chaos_counter.py --port P --fail-rate 0.3 --seed 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def answer_for(execution: str, step: str, item: int) -> int:
    """The value the counter answers for one logical step (the workflow's results are
    built from these, so the driver can compute every execution's expected result)."""
    digest = hashlib.sha256(f"{execution}|{step}|{item}".encode()).hexdigest()
    return int(digest[:6], 16) % 1000


@dataclass
class Faults:
    fail_rate: float = 0.0
    ambiguous_share: float = 0.25
    latency: float = 0.05
    slow_rate: float = 0.0
    slow: float = 1.0
    hold: float = 0.0
    """Every answer takes at least this long (the driver sets it around the store fault)."""


@dataclass
class Ledger:
    faults: Faults
    rng: random.Random
    requests: int = 0
    unkeyed: int = 0
    answered_503: int = 0
    ambiguous_503: int = 0
    replayed: int = 0
    effects: int = 0
    per_key: Counter[str] = field(default_factory=Counter)
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Key -> the answer of its effect."""
    by_step: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Logical step -> keys under which an effect was applied, in order."""


async def effect(request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    faults = ledger.faults
    ledger.requests += 1
    key = request.headers.get("idempotency-key", "")
    try:
        body = await request.json()
        logical = f"{body['execution']}|{body['step']}|{int(body.get('item', 0))}"
        value = answer_for(str(body["execution"]), str(body["step"]), int(body.get("item", 0)))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "bad_request"}, status_code=400)
    if not key:
        ledger.unkeyed += 1
        key = f"unkeyed-{ledger.requests}"
    ledger.per_key[key] += 1
    rng = ledger.rng
    delay = rng.uniform(0, faults.latency)
    if faults.slow_rate and rng.random() < faults.slow_rate:
        delay = faults.slow
    delay = max(delay, faults.hold)
    fail = rng.random() < faults.fail_rate
    ambiguous = fail and rng.random() < faults.ambiguous_share
    if delay:
        await asyncio.sleep(delay)
    if fail and not ambiguous:
        ledger.answered_503 += 1
        return JSONResponse({"error": "unavailable"}, status_code=503)
    if key in ledger.applied:
        ledger.replayed += 1
        answer = ledger.applied[key]
    else:
        answer = {"result": value, "logical": logical, "effect": ledger.effects + 1}
        ledger.applied[key] = answer
        ledger.by_step[logical].append(key)
        ledger.effects += 1
    if ambiguous:
        ledger.ambiguous_503 += 1
        return JSONResponse({"error": "unavailable"}, status_code=503)
    return JSONResponse(answer)


async def report(request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    return JSONResponse(
        {
            "requests": ledger.requests,
            "unkeyed": ledger.unkeyed,
            "answered503": ledger.answered_503,
            "ambiguous503": ledger.ambiguous_503,
            "replayed": ledger.replayed,
            "effects": ledger.effects,
            "forwarded": request.app.state.forwarded,
            "forwardedTwice": request.app.state.duplicated,
            "forwardErrors": request.app.state.forward_errors,
            "byStep": {
                logical: [[key, ledger.per_key[key]] for key in keys]
                for logical, keys in ledger.by_step.items()
            },
        }
    )


async def set_faults(request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    body = await request.json()
    names = {"failRate": "fail_rate", "latency": "latency", "slowRate": "slow_rate", "hold": "hold"}
    for wire, attr in names.items():
        if wire in body:
            setattr(ledger.faults, attr, float(body[wire]))
    return JSONResponse({"ok": True})


_HOP = {"host", "content-length", "connection", "transfer-encoding"}


async def forward(request: Request) -> Response:
    """Relay a task delivery to the engine, sometimes twice at once."""
    state = request.app.state
    url = f"{state.forward}/{request.path_params['path']}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    body = await request.body()
    client: httpx.AsyncClient = state.client

    async def send(delay: float) -> Response:
        await asyncio.sleep(delay)
        try:
            answer = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            state.forward_errors += 1
            return JSONResponse({"error": "engine unreachable"}, status_code=503)
        return Response(answer.content, answer.status_code, media_type="application/json")

    state.forwarded += 1
    if state.duplicate_rate and state.rng.random() < state.duplicate_rate:
        state.duplicated += 1
        copy = asyncio.ensure_future(send(state.rng.uniform(0, 0.05)))
        state.copies.add(copy)
        copy.add_done_callback(state.copies.discard)
    return await send(0)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    faults: Faults, seed: int, forward_to: str = "", duplicate_rate: float = 0.0
) -> Starlette:
    app = Starlette(
        routes=[
            Route("/effect", effect, methods=["POST"]),
            Route("/forward/{path:path}", forward, methods=["POST"]),
            Route("/_report", report, methods=["GET"]),
            Route("/_faults", set_faults, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.ledger = Ledger(faults=faults, rng=random.Random(seed))
    app.state.forward = forward_to.rstrip("/")
    app.state.duplicate_rate = duplicate_rate
    app.state.rng = random.Random(seed + 1)
    app.state.client = httpx.AsyncClient(timeout=600) if forward_to else None
    app.state.copies = set()
    app.state.forwarded = app.state.duplicated = app.state.forward_errors = 0
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--ambiguous-share", type=float, default=0.25)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow", type=float, default=1.0)
    parser.add_argument("--forward", default="", help="relay /forward/<path> to this URL")
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    args = parser.parse_args()
    faults = Faults(args.fail_rate, args.ambiguous_share, args.latency, args.slow_rate, args.slow)
    uvicorn.run(
        create_app(faults, args.seed, args.forward, args.duplicate_rate),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
