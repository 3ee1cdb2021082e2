"""Browser test support: headless Debian Chromium (`/usr/bin/chromium`, or `$ET_CHROMIUM`)
driven by Playwright's Python package (no browser download), the `Web` page helper, screenshot
folder and wait bounds. The fixtures are in conftest.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Bounded waits for what the browser shows (milliseconds, Playwright's unit).
SHORT_MS = 30_000
TRAIN_MS = 300_000
VIEWPORT = {"width": 1280, "height": 860}

# Recorded in every page before its scripts run: CSP violations and uncaught errors.
WATCH_SCRIPT = """
window.__problems = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__problems.push('CSP: ' + e.violatedDirective + ' blocked ' + e.blockedURI);
});
"""


def missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser tests need {reason} (CI=true: never skipped)")
    pytest.skip(f"browser tests need {reason}")


def chromium_path() -> str:
    path = os.environ.get("ET_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        missing("Debian's chromium (apt-get install chromium)")
    return path


class Web:
    """Opens pages (each in its own context: own sessionStorage, no shared cookies), saves
    screenshots, and collects script errors and CSP violations of every page it opened."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[Any] = []
        self.pages: list[Any] = []
        self.errors: list[str] = []

    def new_page(self) -> Any:
        context = self.browser.new_context(viewport=VIEWPORT, base_url=self.base_url)
        context.set_default_timeout(SHORT_MS)
        context.add_init_script(WATCH_SCRIPT)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.contexts.append(context)
        self.pages.append(page)
        return page

    def open_app(self, page: Any, route: str = "") -> None:
        page.goto(f"{self.base_url}/app/#/{route}")
        page.wait_for_selector("html[data-app=ready]")

    def shot(self, page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def problems(self) -> list[str]:
        found = list(self.errors)
        for page in self.pages:
            if not page.is_closed():
                found += page.evaluate("window.__problems || []")
        return found

    def close(self) -> None:
        for context in self.contexts:
            context.close()
