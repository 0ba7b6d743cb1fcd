"""Helpers for the dashboard's browser tests: Debian's Chromium driven by Playwright, against
``treadle serve`` in a child process.

The browser is the system's (``apt-get install -y chromium``), never one Playwright would
download. Without it (or without Playwright) the tests skip, saying which is missing;
``TREADLE_REQUIRE_BROWSER=1`` (set by CI) turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from .sidecar import REPO_ROOT

CHROMIUM = Path(os.environ.get("TREADLE_CHROMIUM", "/usr/bin/chromium"))
DOCS = REPO_ROOT / "docs"
WAIT_S = 15.0


def _give_up(message: str) -> NoReturn:
    if os.environ.get("TREADLE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} (TREADLE_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(message)


def chromium() -> Path:
    """The Chromium to drive; skips (or fails under ``TREADLE_REQUIRE_BROWSER=1``) without
    it or without Playwright."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _give_up("Playwright for Python is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _give_up(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`")
    return CHROMIUM


class Api:
    """The served HTTP API, to set up instances and check on them."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10, headers=headers)

    def start(self, name: str, payload: str, instance_id: str | None = None) -> str:
        """Start workflow ``name`` with the JSON text ``payload``; return its id."""
        query = f"?instanceID={instance_id}" if instance_id else ""
        response = self.http.post(
            f"/v1.0/workflows/dapr/{name}/start{query}",
            content=payload,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 202, response.text
        return str(response.json()["instanceID"])

    def state(self, instance_id: str) -> dict[str, Any]:
        """The instance's state as the JSON API gives it."""
        response = self.http.get(f"/api/v1/workflows/{instance_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(self, instance_id: str, *statuses: str) -> dict[str, Any]:
        """Wait (at most :data:`WAIT_S`) until the instance is in one of ``statuses``."""
        deadline = time.monotonic() + WAIT_S
        state = self.state(instance_id)
        while state["runtime_status"] not in statuses:
            assert time.monotonic() < deadline, (
                f"{instance_id} is {state['runtime_status']} after {WAIT_S} s, not {statuses}"
            )
            time.sleep(0.05)
            state = self.state(instance_id)
        return state

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


def screenshot(what: Any, directory: Path, name: str) -> Path:
    """Save a screenshot of a page (as the window shows it) or of an element of it in
    ``directory``; with ``TREADLE_UPDATE_SCREENSHOTS=1`` also as ``docs/<name>`` (the
    README's pictures)."""
    path = directory / name
    what.screenshot(path=str(path))
    if os.environ.get("TREADLE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / name)
    return path


def open_tab(page: Any, view: str) -> None:
    """Click the instance page's tab ``view`` (a link to another page) and wait until that
    page is the one shown, parsed whole: a click only starts the navigation, and a count of
    rows taken at once may still read the page before."""
    page.click(f"#tab-{view}")
    page.wait_for_selector(f"#tab-{view}.current")
    page.wait_for_load_state("domcontentloaded")


def follow(page: Any, selector: str) -> None:
    """Click the link or button ``selector`` that loads another page, and wait until that
    page is parsed whole (a click returns once the navigation has started)."""
    page.click(selector)
    page.wait_for_load_state("domcontentloaded")
