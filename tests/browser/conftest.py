"""The web console in a real browser: Playwright for Python driving Debian's Chromium
against a real ``wfe dev`` process (docs/console.md).

Fixtures: ``console_server`` (a ``wfe dev`` on a free port with its own temporary
database, examples loaded; its base URL), ``start_console`` (another one with extra
environment, e.g. ``WFE_API_KEYS``), ``page`` (a fresh browser context and page whose
console errors, page errors, failed requests and CSP violations fail the test),
``api`` (an httpx client on the server's ``/api/v1``) and ``shot(page, name)`` (a
screenshot in ``build/test-artifacts/console/<name>.png``).

Without ``/usr/bin/chromium`` or the ``playwright`` package every test here is skipped
and the run ends with ONE loud ``BROWSER SUITE NOT RUN`` line; under ``CI=true`` (where
``.ci/run`` installs Chromium first) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from processes import ROOT, ServiceProcess, wfe_dev_argv

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "console"
NOT_RUN = "BROWSER SUITE NOT RUN"
HERE = Path(__file__).parent


def _missing() -> str | None:
    """Why the browser suite cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (make install)"
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


_reason: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    reason = _missing()
    if reason is None or not mine:
        return
    if _in_ci():
        return  # the browser fixture fails them: CI must run this suite
    _reason.append(reason)
    skip = pytest.mark.skip(reason=f"{NOT_RUN}: {reason}")
    for item in mine:
        item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    """One loud line, after the summary, when the suite was skipped."""
    if not _reason:
        return
    line = f"{NOT_RUN}: tests/browser — {_reason[0]}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, red=True, bold=True)
    else:
        print(line)


@dataclass
class ConsoleServer:
    base: str
    process: ServiceProcess

    @property
    def console(self) -> str:
        return f"{self.base}/console/"


@pytest.fixture(scope="module")
def start_console(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ConsoleServer]]:
    """``start_console(env)``: a ``wfe dev`` process (examples loaded) with ``env``."""
    started: list[ServiceProcess] = []

    def start(env: dict[str, str] | None = None) -> ConsoleServer:
        folder = tmp_path_factory.mktemp("console")
        process = ServiceProcess(wfe_dev_argv(folder / "wfe.db"), folder, env)
        started.append(process)
        process.wait_healthy()
        return ConsoleServer(process.base, process)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def console_server(start_console: Callable[..., ConsoleServer]) -> ConsoleServer:
    """A ``wfe dev`` in local mode (everyone is owner): its base URL and console URL."""
    return start_console()


@pytest.fixture(scope="module")
def api(console_server: ConsoleServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{console_server.base}/api/v1", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module (tests/browser is not a package), not per session:
    Playwright's sync API runs an event loop on this thread until it stops, and every
    asyncio test after the suite would then fail with "Cannot run the event loop while
    another loop is running"."""
    missing = _missing()
    if missing is not None:  # only under CI=true: elsewhere these tests are skipped
        pytest.fail(f"the browser suite must run under CI: {missing}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Problems:
    """What went wrong in the page: console errors (CSP violations among them), page
    errors, failed requests, and dialogs (alert() from injected markup)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    """Substrings of errors the test provokes on purpose (e.g. a 401 before sign-in)."""

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


# Reported as console errors by Chromium for every securitypolicyviolation event too;
# this listener makes them explicit in case a message is suppressed.
_CSP_PROBE = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser: Browser, problems: Problems) -> Iterator[Page]:
    """A fresh context (1280x860) and page; any unexpected problem fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(_CSP_PROBE)
    tab = context.new_page()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.errors.append(f"console: {message.text}")

    def on_failed(request: Any) -> None:
        if request.failure == "net::ERR_ABORTED":  # cancelled by the page or its closing
            return
        problems.errors.append(f"request failed: {request.method} {request.url} {request.failure}")

    def on_dialog(dialog: Any) -> None:
        problems.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.errors.append(f"page error: {error}"))
    tab.on("requestfailed", on_failed)
    tab.on("dialog", on_dialog)
    yield tab
    context.close()
    unexpected = problems.unexpected()
    assert not unexpected, f"the page reported problems: {unexpected}"
    assert not problems.dialogs, f"dialogs opened: {problems.dialogs}"


@pytest.fixture
def shot() -> Callable[[Page, str], Path]:
    """``shot(page, name)``: a full-page screenshot in build/test-artifacts/console/."""

    def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
