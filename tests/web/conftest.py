"""Browser fixtures: headless Debian Chromium (`/usr/bin/chromium`, or `$ET_CHROMIUM`) driven by
Playwright's Python package (no browser download), and a screenshot folder.

When Chromium or Playwright is missing these tests fail under CI=true and are skipped
otherwise. Every page a test opens records Content-Security-Policy violations and uncaught
script errors; the `web` fixture fails the test if any happened.

Screenshots go to `test-artifacts/screenshots/` in the working tree (git-ignored; CI keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.browser import CHROMIUM_FLAGS, Web, chromium_path, missing


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the Python package playwright (requirements-dev.txt)")
    path = chromium_path()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def web_factory(browser: Any) -> Iterator[Any]:
    """`web_factory(base_url)` -> a `Web`; each one's pages must end without CSP violations or
    script errors."""
    made: list[Web] = []

    def make(base_url: str) -> Web:
        web = Web(browser, base_url)
        made.append(web)
        return web

    yield make
    problems = [p for web in made for p in web.problems()]
    for web in made:
        web.close()
    assert not problems, problems
