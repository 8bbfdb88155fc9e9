"""The console's shell in a real browser: it loads with no console error or CSP
violation, its headers carry the policy, navigation works, and with API keys the user
signs in and a viewer sees no write buttons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.api.auth import hash_api_key

pytestmark = pytest.mark.slow

SALT = "console-test-salt"
OWNER_KEY = "owner-key-0123456789"
VIEWER_KEY = "viewer-key-0123456789"


def test_console_serves_index_with_a_strict_policy(console_server: Any) -> None:
    for path in ("/console", "/console/", "/console/app.js", "/console/vendor/yaml/LICENSE"):
        answer = httpx.get(console_server.base + path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
    index = httpx.get(console_server.base + "/console/")
    assert index.headers["content-type"].startswith("text/html")
    assert '<script type="importmap">' in index.text
    assert httpx.get(console_server.base + "/console/app.js").headers["content-type"].split(";")[
        0
    ] in {"text/javascript", "application/javascript"}
    assert httpx.get(console_server.base + "/console/nope.js").status_code == 404


def test_loads_and_navigates(
    console_server: Any, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(console_server.console)
    expect(page.locator("[data-nav=workflows]")).to_have_attribute("aria-current", "page")
    expect(page.locator("table.data tbody tr").first).to_be_visible()
    expect(page.locator(".role")).to_have_text("owner")
    shot(page, "shell-workflows")
    page.locator("[data-nav=executions]").click()
    expect(page).to_have_url(f"{console_server.console}#/executions")
    expect(page.locator("[data-nav=executions]")).to_have_attribute("aria-current", "page")
    page.locator("[data-nav=workflows]").click()
    expect(page.locator("#page-title")).to_have_text("Workflows")


def test_session_endpoint_in_local_mode(api: httpx.Client) -> None:
    session = api.get("/session").json()
    assert session == {
        "principal": "local-dev",
        "tenant": "default",
        "role": "owner",
        "workflowRoles": {},
        "authRequired": False,
    }


@pytest.fixture(scope="module")
def keyed_server(start_console: Callable[..., Any]) -> Any:
    keys = [
        f"{hash_api_key(OWNER_KEY, SALT)}:alice:default:owner",
        f"{hash_api_key(VIEWER_KEY, SALT)}:victor:default:viewer",
    ]
    return start_console({"WFE_API_KEYS": ",".join(keys), "WFE_API_KEY_SALT": SALT})


def _sign_in(page: Any, server: Any, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(server.console + "#/workflows")
    field = page.get_by_label("API key")
    expect(field).to_be_visible()
    field.fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_with_an_api_key(
    keyed_server: Any, page: Any, problems: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    problems.expected.append("401")  # the first GET /session, before signing in
    page.goto(keyed_server.console)
    expect(page.get_by_label("API key")).to_be_visible()
    shot(page, "shell-sign-in")
    page.get_by_label("API key").fill("wrong-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-error")).to_contain_text("invalid API key")
    page.get_by_label("API key").fill(OWNER_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who-principal")).to_have_text("alice")
    expect(page.locator(".role")).to_have_text("owner")
    expect(page.get_by_role("button", name="New workflow")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()


def test_a_viewer_sees_no_write_buttons(keyed_server: Any, page: Any, problems: Any) -> None:
    from playwright.sync_api import expect

    problems.expected.append("401")
    _sign_in(page, keyed_server, VIEWER_KEY)
    expect(page.locator(".role")).to_have_text("viewer")
    expect(page.locator("table.data tbody tr").first).to_be_visible()
    for name in ("New workflow", "Import", "Delete"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.locator("table.data tbody tr a").first.click()
    expect(page.locator("[data-step-id]").first).to_be_visible()
    for name in ("Save", "Run"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)


def test_every_vendored_library_loads_through_the_import_map(
    console_server: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(console_server.console)
    expect(page.locator("[data-nav=workflows]")).to_be_visible()
    loaded = page.evaluate(
        """async () => {
            const map = JSON.parse(document.querySelector('script[type=importmap]').textContent);
            const out = {};
            for (const name of Object.keys(map.imports)) {
                const module = await import(name);
                out[name] = Object.keys(module).length;
            }
            return out;
        }"""
    )
    assert set(loaded) >= {"@codemirror/view", "@dagrejs/dagre", "chart.js", "yaml"}
    assert all(count > 0 for count in loaded.values()), loaded


def test_each_load_gets_its_own_style_nonce(console_server: Any) -> None:
    first, second = (httpx.get(console_server.base + "/console/") for _ in range(2))
    nonces = []
    for answer in (first, second):
        policy = answer.headers["content-security-policy"]
        nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<meta name="csp-nonce" content="{nonce}">' in answer.text
        assert answer.headers["cache-control"] == "no-store"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    assert "{{CSP_NONCE}}" not in httpx.get(console_server.base + "/console/index.html").text
    module = httpx.get(console_server.base + "/console/app.js")
    assert "nonce-" not in module.headers["content-security-policy"]
    assert module.headers["cache-control"] == "no-cache"
    vendored = httpx.get(console_server.base + "/console/vendor/yaml/browser/index.js")
    assert vendored.headers["cache-control"] == "public, max-age=86400"


def test_the_policy_blocks_injected_script_and_style(
    console_server: Any, page: Any, problems: Any
) -> None:
    """What the ``page`` fixture fails a test on: here provoked, then checked and cleared."""
    from playwright.sync_api import expect

    page.goto(console_server.console)
    expect(page.locator("[data-nav=workflows]")).to_be_visible()
    with (
        page.expect_console_message(lambda m: "CSP violation: script-src" in m.text),
        page.expect_console_message(lambda m: "CSP violation: style-src" in m.text),
    ):
        page.evaluate(
            """() => {
            const script = document.createElement('script');
            script.textContent = 'window.__injected = true';
            document.body.append(script);
            const style = document.createElement('style');
            style.textContent = 'body { background: red }';
            document.head.append(style);
        }"""
        )
    assert page.evaluate("window.__injected === undefined")
    assert any("CSP violation: script-src" in e for e in problems.errors), problems.errors
    assert any("CSP violation: style-src" in e for e in problems.errors), problems.errors
    problems.errors.clear()
