"""The dashboard's defences, in Chromium: values from workflows are shown as text, never run;
a page of another site cannot make the dashboard act; with an API token, it asks once and
keeps a session cookie no script can read."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import Api, chromium, open_tab
from .sidecar import HERE, serve

pytestmark = pytest.mark.timeout(180)
TOKEN = "s3cret-token"


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(path))
        yield launched
        launched.close()


@pytest.fixture
def served_api(tmp_path: Path) -> Iterator[Api]:
    chromium()
    with serve(tmp_path, "--app", "dashboard_app:runtime", cwd=HERE) as served:
        api = Api(f"http://127.0.0.1:{served.http_port}")
        yield api
        api.close()


class _OtherSite:
    """A page on another origin (another port) with a form posting to the dashboard."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_markup_in_a_workflow_output_is_shown_as_text(browser: Any, served_api: Api) -> None:
    evil = "<script>window.pwned = 1</script><img src=x onerror=window.pwned=2>"
    iid = served_api.start("markup", json.dumps(evil))
    served_api.wait_status(iid, "COMPLETED")
    page = browser.new_page(base_url=served_api.base)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    response = page.goto(f"/ui/instances/{iid}")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert evil in page.locator("#output").inner_text()
    open_tab(page, "full")
    open_tab(page, "graph")
    assert page.evaluate("() => window.pwned") is None
    assert dialogs == []


def test_a_cross_site_post_is_refused(browser: Any, served_api: Api) -> None:
    iid = served_api.start("approval", '"vase"', "cross-1")
    served_api.wait_status(iid, "RUNNING")
    action = f"{served_api.base}/ui/instances/{iid}/terminate"
    other = _OtherSite(
        f"""<!doctype html><form method="post" action="{action}">
        <input type="hidden" name="confirmed" value="1">
        <input type="hidden" name="csrf" value="guessed">
        <button id="go" type="submit">Win a prize</button></form>"""
    )
    try:
        page = browser.new_page()
        page.goto(other.url)
        with page.expect_navigation() as navigation:
            page.click("#go")
        response = navigation.value
        assert response is not None and response.status == 403
        assert "another site" in page.inner_text("main") or "not from this" in page.inner_text(
            "main"
        )
    finally:
        other.close()
    assert served_api.state(iid)["runtime_status"] == "RUNNING"
    # The same request without the page's CSRF token, from no page at all, is refused too.
    refused = served_api.http.post(
        f"/ui/instances/{iid}/terminate", data={"confirmed": "1", "csrf": "guessed"}
    )
    assert refused.status_code == 403
    assert served_api.state(iid)["runtime_status"] == "RUNNING"


def test_with_a_token_the_dashboard_asks_once_and_keeps_an_http_only_cookie(
    browser: Any, tmp_path: Path
) -> None:
    chromium()
    env = {"TREADLE_API_TOKEN": TOKEN}
    with serve(tmp_path, "--app", "dashboard_app:runtime", cwd=HERE, env=env) as served:
        base = f"http://127.0.0.1:{served.http_port}"
        api = Api(base, headers={"dapr-api-token": TOKEN})
        try:
            iid = api.start("approval", '"lamp"', "tok-1")
            api.wait_status(iid, "RUNNING")
            context = browser.new_context(base_url=base)
            page = context.new_page()
            page.goto(f"/ui/instances/{iid}")
            assert "/ui/login" in page.url
            page.fill("input[name=token]", "wrong")
            page.click("form.login button")
            assert "not the server's API token" in page.inner_text("main")
            page.fill("input[name=token]", TOKEN)
            page.click("form.login button")
            assert page.url.endswith(f"/ui/instances/{iid}")  # back where it was going
            assert page.locator("#status").inner_text() == "RUNNING"
            cookie = next(c for c in context.cookies() if c["name"] == "treadle_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert TOKEN not in cookie["value"]
            assert "treadle_session" not in page.evaluate("() => document.cookie")
            page.click("#do-suspend")
            page.click("form.confirm button[type=submit]")
            api.wait_status(iid, "SUSPENDED")

            stranger = browser.new_context(base_url=base).new_page()
            assert stranger.request.get("/ui/live/list").status == 401
            assert stranger.request.get("/", max_redirects=0).status == 303
            assert (
                api.http.get("/api/v1/workflows", headers={"dapr-api-token": ""}).status_code == 401
            )
        finally:
            api.close()
