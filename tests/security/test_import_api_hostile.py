"""Hostile sources sent to ``POST /api/v1/workflows/import?format=gcw|asl`` (and saved):
billion laughs, deep nesting, node floods, cross-site simple requests. Each is refused
quickly with a stable code, and nothing is stored."""

from __future__ import annotations

import time

import httpx
import pytest

API = "/api/v1"
IMPORT = f"{API}/workflows/import"
SAVE = {"save": "true", "acceptUnsupported": "true", "name": "hostile"}

BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
main:
  steps:
    - x:
        assign:
          - v: *g
"""
GCW = """main:
  steps:
    - a:
        assign:
          - n: 1
"""


async def _stored(api: httpx.AsyncClient) -> list[object]:
    listed = await api.get(f"{API}/workflows")
    assert listed.status_code == 200
    items: list[object] = listed.json()["items"]
    return items


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


@pytest.mark.parametrize("fmt", ["gcw", "asl"])
async def test_billion_laughs_is_refused_quickly_and_stores_nothing(
    api: httpx.AsyncClient, fmt: str
) -> None:
    started = time.monotonic()
    for params in ({"format": fmt}, {"format": fmt, **SAVE}):
        response = await api.post(
            IMPORT, params=params, content=BILLION_LAUGHS, headers={"Content-Type": "text/yaml"}
        )
        assert _code(response) == (400, "IMPORT_YAML_REFUSED"), response.text
    assert time.monotonic() - started < 2
    assert await _stored(api) == []


@pytest.mark.parametrize(
    ("body", "media", "codes"),
    [
        ("[" * 100_000 + "]" * 100_000, "application/json", {"IMPORT_TOO_DEEP", "IMPORT_SYNTAX"}),
        ('{"a":' * 150 + "1" + "}" * 150, "application/json", {"IMPORT_TOO_DEEP"}),
        ("- " * 5000 + "x", "application/yaml", {"IMPORT_TOO_DEEP"}),
        (
            "a:\n" + "".join(f"{' ' * i} b:\n" for i in range(1, 300)),
            "text/yaml",
            {"IMPORT_TOO_DEEP"},
        ),
    ],
)
async def test_deep_nesting_is_refused_without_a_server_error(
    api: httpx.AsyncClient, body: str, media: str, codes: set[str]
) -> None:
    for fmt in ("gcw", "asl"):
        response = await api.post(
            IMPORT, params={"format": fmt, **SAVE}, content=body, headers={"Content-Type": media}
        )
        status, code = _code(response)
        assert status == 400 and code in codes, response.text
    assert await _stored(api) == []


async def test_a_flood_of_small_values_is_refused_as_too_large(api: httpx.AsyncClient) -> None:
    body = "[" + ",".join(["0"] * 200_000) + "]"
    response = await api.post(
        IMPORT,
        params={"format": "gcw", **SAVE},
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert _code(response) == (413, "IMPORT_TOO_LARGE"), response.text
    assert await _stored(api) == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "text/yaml", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "text/yaml", "Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
async def test_cross_site_imports_change_nothing(
    api: httpx.AsyncClient, headers: dict[str, str], expected: int
) -> None:
    response = await api.post(
        IMPORT, params={"format": "gcw", **SAVE}, content=GCW, headers=headers
    )
    assert response.status_code == expected, response.text
    assert await _stored(api) == []
    same_site = await api.post(
        IMPORT, params={"format": "gcw", **SAVE}, content=GCW, headers={"Content-Type": "text/yaml"}
    )
    assert same_site.status_code == 201, same_site.text  # the same request, sent by a client
