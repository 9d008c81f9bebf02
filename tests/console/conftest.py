"""Fixtures of the console tests: the session's local system staged afresh per test, and a
headless Chromium session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from mdsync.console_scene import Scene, stage
from mdsync.harness import OPERATOR, PATIENCE, LocalSystem
from tests.console.browser import ARGS, chromium_path

PASSWORD = "local-operator-password"
# Pages and assertions wait for what they expect as long as the harness waits for the worker:
# Playwright's own 5 s (assertions) and 30 s (actions) are short on a loaded machine.
BROWSER_PATIENCE_MS = PATIENCE * 1000
expect.set_options(timeout=BROWSER_PATIENCE_MS)


@pytest.fixture
def scene(system: LocalSystem) -> Iterator[Scene]:
    """On the session's system, emptied (tests/conftest.py): a collision, a refused value, a
    parked notice and 3 leads waiting (the worker held until the test ends)."""
    assert system.host is not None
    assert system.config.operator_password == PASSWORD
    staged = stage(system)
    yield staged
    system.host.hold_queue(False)


def sign_in(base: str, user: str = OPERATOR, password: str = PASSWORD) -> requests.Session:
    session = requests.Session()
    answer = session.post(
        f"{base}/.auth/login", data={"username": user, "password": password}, allow_redirects=False
    )
    assert answer.status_code == 302, answer.text
    return session


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(chromium_path()), headless=True, args=ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh.set_default_timeout(BROWSER_PATIENCE_MS)
    yield fresh
    fresh.close()


def browser_sign_in(page: Page, base: str, user: str = OPERATOR, password: str = PASSWORD) -> None:
    page.goto(f"{base}/api/console")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


@pytest.fixture
def operator_page(context: BrowserContext, system: LocalSystem) -> Page:
    assert system.host is not None
    page = context.new_page()
    browser_sign_in(page, system.host.url)
    page.wait_for_selector("[data-figure=signed-in-as]")
    return page
