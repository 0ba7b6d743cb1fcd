"""The dashboard as a person uses it, in Chromium: the list and its filters, an instance's
history views, graph, timeline and step-through, and actions taken from the page.

One ``treadle serve --app dashboard_app:runtime`` (on a temporary SQLite store, a free
loopback port) serves every test of this module; the instances are started through its HTTP
API. Screenshots go to the test's temporary directory (and to ``docs/`` with
``TREADLE_UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import Api, chromium, follow, open_tab, screenshot
from .sidecar import HERE, Served, serve

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    chromium()  # skip before starting anything
    with serve(tmp_path_factory.mktemp("dash"), "--app", "dashboard_app:runtime", cwd=HERE) as s:
        yield s


@pytest.fixture(scope="module")
def base(served: Served) -> str:
    return f"http://127.0.0.1:{served.http_port}"


@pytest.fixture(scope="module")
def api(base: str) -> Iterator[Api]:
    client = Api(base)
    yield client
    client.close()


@pytest.fixture(scope="module")
def instances(api: Api) -> dict[str, str]:
    """The module's instances, started once, by role."""
    ids = {
        "fan_out": api.start("fan_out", "30"),
        "retries": api.start("with_retries", '"k1"'),
        "approval": api.start("approval", '"lamp"', "order-1"),
        "doomed": api.start("doomed", '"no stock"'),
    }
    for role in ("fan_out", "retries"):
        api.wait_status(ids[role], "COMPLETED")
    api.wait_status(ids["doomed"], "FAILED")
    api.wait_status("order-1:0001", "COMPLETED")
    return ids


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium()))
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, base: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def rows(page: Any) -> list[str]:
    """The instance ids the list shows."""
    return [
        str(t) for t in page.locator("table.instances tbody td:first-child a").all_inner_texts()
    ]


def test_list_filters_live_in_the_url_and_link_to_instances(
    page: Any, instances: dict[str, str], tmp_path: Path
) -> None:
    page.goto("/")
    assert set(instances.values()) <= set(rows(page))
    counts = page.locator("table.counts")
    assert "fan_out" in counts.inner_text()
    screenshot(page, tmp_path, "dashboard-list.png")

    page.check("input[name=status][value=FAILED]")
    follow(page, "#filters button[type=submit]")
    assert "status=FAILED" in page.url
    assert rows(page) == [instances["doomed"]]

    page.goto("/?name=approval")  # a shared link opens the same view
    assert rows(page) == ["order-1"]
    page.goto("/?prefix=order-1")
    assert sorted(rows(page)) == ["order-1", "order-1:0001"]
    page.goto("/?created_from=2999-01-01T00:00:00")
    assert rows(page) == []

    page.goto("/?limit=2")
    first = rows(page)
    follow(page, "a[rel=next]")
    second = rows(page)
    assert len(first) == 2 and second and not set(first) & set(second)

    page.goto("/?name=fan_out")
    follow(page, f"text={instances['fan_out']}")
    assert page.url.endswith(f"/ui/instances/{instances['fan_out']}")
    assert page.locator("#status").inner_text() == "COMPLETED"


def test_a_fan_out_is_one_group_in_the_graph_and_one_bar_in_the_timeline(
    page: Any, instances: dict[str, str], tmp_path: Path
) -> None:
    page.goto(f"/ui/instances/{instances['fan_out']}")
    compact = page.locator("table.history.compact tbody tr")
    assert compact.count() == 31  # thirty activities and the timer, one row each
    open_tab(page, "full")
    assert page.locator("table.history.full tbody tr").count() > 60

    open_tab(page, "graph")
    group = page.locator("svg.treadle-graph g.node-activity")
    assert group.count() == 1
    text = group.text_content() or ""
    assert "square \u00d730" in text and "30 ✓" in text
    assert page.locator("svg.treadle-graph g.node-timer").count() == 1

    open_tab(page, "timeline")
    bars = page.locator("svg.treadle-timeline g.bar")
    assert "square \u00d730" in (bars.first.text_content() or "")

    with page.expect_download() as download:
        page.click("#download-json")
    events = json.loads(Path(download.value.path()).read_text())
    assert events[0]["kind"] == "OrchestratorStarted" and len(events) > 60


def test_the_graph_of_a_pipeline_shows_parallel_groups_retries_and_children(
    page: Any, api: Api, tmp_path: Path
) -> None:
    iid = api.start("pipeline", "200", "pipeline-1")
    api.wait_status(iid, "COMPLETED")
    page.goto(f"/ui/instances/{iid}?view=graph")
    graph = page.locator("svg.treadle-graph")
    activities = graph.locator("g.node-activity")
    texts = [t or "" for t in activities.evaluate_all("nodes => nodes.map(n => n.textContent)")]
    assert any("square \u00d7200" in t for t in texts)
    assert any("flaky" in t and "3 attempts" in t for t in texts)
    screenshot(page.locator("#view"), tmp_path, "dashboard-graph.png")
    follow(page, "svg.treadle-graph a")  # the child workflow's node links to its page
    assert "/ui/instances/pipeline-1%3A" in page.url
    assert page.locator("#status").inner_text() == "COMPLETED"


def test_retries_show_as_attempts(page: Any, instances: dict[str, str]) -> None:
    page.goto(f"/ui/instances/{instances['retries']}")
    row = page.locator("table.history.compact tbody tr", has_text="flaky")
    assert row.locator("td.attempts").inner_text() == "3"
    open_tab(page, "graph")
    assert "3 attempts" in (page.locator("svg.treadle-graph g.node-activity").text_content() or "")


def test_a_failure_shows_its_error_and_stack_trace(page: Any, instances: dict[str, str]) -> None:
    page.goto(f"/ui/instances/{instances['doomed']}")
    assert page.locator("#status").inner_text() == "FAILED"
    assert "no stock" in page.locator("#failure").inner_text()
    assert "Traceback" in page.locator("#stack-trace").inner_text()


def test_waiting_panel_children_step_through_and_raising_the_event(
    page: Any, instances: dict[str, str], api: Api, tmp_path: Path
) -> None:
    page.goto("/ui/instances/order-1")
    waiting = page.locator("#waiting")
    assert "external event 'approve'" in waiting.inner_text()
    assert "waiting for approval" in page.locator("#custom-status").inner_text()
    screenshot(page, tmp_path, "dashboard-instance.png")

    follow(page, "a.child")
    assert page.url.endswith("/ui/instances/order-1%3A0001")
    follow(page, "a.parent")
    assert page.url.endswith("/ui/instances/order-1")

    open_tab(page, "steps")
    total = int(page.locator("#at").get_attribute("max") or 0)
    # Step back to the event that created the child: it is what the run awaited then.
    history = api.http.get("/api/v1/workflows/order-1/history").json()
    created = next(
        i for i, e in enumerate(history) if e["kind"] == "SubOrchestrationInstanceCreated"
    )
    page.goto(f"/ui/instances/order-1?view=steps&at={created + 1}")
    assert "child workflow child_step" in page.locator("#step-awaiting").inner_text()
    assert "Nothing yet." in page.locator("#step-done").inner_text()
    page.goto(f"/ui/instances/order-1?view=steps&at={total}")
    assert "external event 'approve'" in page.locator("#step-awaiting").inner_text()
    assert "child child_step" in page.locator("#step-done").inner_text()
    page.click("#step-back")
    assert f"at={total - 1}" in page.url

    page.goto("/ui/instances/order-1")
    page.fill("#event-name", "approve")
    page.fill("#event-data", '"yes"')
    page.click("#do-raise")
    assert "Raise event 'approve' on order-1" in page.locator(".confirm-question").inner_text()
    page.click("form.confirm button[type=submit]")
    assert "Raise event: done." in page.locator(".notice").inner_text()
    api.wait_status("order-1", "COMPLETED")
    # The page refreshes by itself and shows the end.
    page.locator("#status", has_text="COMPLETED").wait_for()
    assert '"yes"' in page.locator("#output").inner_text()


def test_terminate_from_the_page(page: Any, api: Api) -> None:
    iid = api.start("approval", '"desk"', "order-2")
    api.wait_status(iid, "RUNNING")
    page.goto(f"/ui/instances/{iid}")
    page.click("#do-terminate")
    page.click("form.confirm button[type=submit]")
    assert api.wait_status(iid, "TERMINATED")["runtime_status"] == "TERMINATED"
    page.locator("#status", has_text="TERMINATED").wait_for()


def test_running_instances_appear_in_the_list_without_a_reload(page: Any, api: Api) -> None:
    page.goto("/?status=RUNNING&name=approval")
    marker = page.evaluate("() => { window.notReloaded = true; return 1; }")
    assert marker == 1
    api.start("approval", '"chair"', "order-live")
    page.locator("table.instances a", has_text=re.compile(r"^order-live$")).wait_for()
    assert page.evaluate("() => window.notReloaded === true")


def test_rerun_start_anew_and_purge_from_the_page(
    page: Any, instances: dict[str, str], api: Api
) -> None:
    source = instances["retries"]
    page.goto(f"/ui/instances/{source}")
    page.select_option(
        "#rerun-from",
        label=next(o for o in page.locator("#rerun-from option").all_inner_texts() if "flaky" in o),
    )
    page.fill("#rerun-input", '"k2"')
    page.click("#do-rerun")
    page.click("form.confirm button[type=submit]")
    rerun_id = page.url.split("/ui/instances/")[1].split("?")[0]
    assert rerun_id != source
    # The chosen attempt ran again with the new input (its retries keep the code's input).
    assert "done after" in str(api.wait_status(rerun_id, "COMPLETED")["serialized_output"])
    history = api.http.get(f"/api/v1/workflows/{rerun_id}/history").json()
    assert any(e["kind"] == "TaskScheduled" and e.get("input") == '"k2"' for e in history)

    page.goto(f"/ui/instances/{instances['fan_out']}")
    page.click("#do-restart")
    page.click("form.confirm button[type=submit]")
    again = page.url.split("/ui/instances/")[1].split("?")[0]
    assert again != instances["fan_out"]
    assert api.wait_status(again, "COMPLETED")["serialized_input"] == "30"

    page.goto(f"/ui/instances/{again}")
    page.click("#do-purge")
    page.click("form.confirm button[type=submit]")
    assert page.url.split("?")[0].endswith("/")
    assert api.http.get(f"/api/v1/workflows/{again}").status_code == 404
