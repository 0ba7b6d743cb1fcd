"""Retention end to end: purge by filter from the client, the CLI and the HTTP API with no
worker running, and a runtime applying a retention policy on its clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main
from treadle.clock import ManualClock
from treadle.store import open_store
from treadle.store.base import Store
from treadle.store.retention import Maintenance

from .helpers import finish, wait_until
from .test_http_api import Http

START = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _echo(ctx: wf.WorkflowContext, value: Any) -> Any:
    return value
    yield


def _boom(ctx: wf.WorkflowContext, _: Any) -> Generator[Any, Any, None]:
    raise ValueError("boom")
    yield


@pytest.fixture
def finished(store_url: str) -> Iterator[list[str]]:
    """Two COMPLETED instances of ``echo``, one of ``other`` and a FAILED ``boom``; then no
    runtime runs."""
    runtime = wf.WorkflowRuntime(store_url)
    runtime.register_workflow(_echo, name="echo")
    runtime.register_workflow(_echo, name="other")
    runtime.register_workflow(_boom, name="boom")
    with runtime, wf.WorkflowClient(store_url) as client:
        ids = [client.schedule_new_workflow(n) for n in ("echo", "echo", "other", "boom")]
        for iid in ids:
            finish(client, iid)
    yield ids


def _left(client: wf.WorkflowClient) -> set[str]:
    return {s.instance_id for s in client.list_workflows(page_size=100).states}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_client_purges_by_filter_with_no_worker_running(
    finished: list[str], client: wf.WorkflowClient
) -> None:
    _, _, other, boom = finished
    completed = wf.WorkflowStatus.COMPLETED
    assert client.purge_workflows(status=completed, name="echo", dry_run=True) == 2
    assert _left(client) == set(finished)
    past = datetime.now(timezone.utc) - timedelta(days=1)
    assert client.purge_workflows(status=completed, finished_before=past) == 0
    assert client.purge_workflows(status=completed, name="echo") == 2
    assert _left(client) == {other, boom}
    assert client.purge_workflows(status=wf.WorkflowStatus.RUNNING) == 0
    assert client.purge_workflows() == 2
    assert _left(client) == set()


def test_cli_purges_by_status_and_age(finished: list[str], store_url: str) -> None:
    runner = CliRunner()
    args = ["--db", store_url, "workflow", "purge", "--status", "COMPLETED"]
    dry = runner.invoke(main, [*args, "--older-than", "0s", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.strip() == "would purge 3 instances"
    kept = runner.invoke(main, [*args, "--older-than", "7d"])
    assert kept.exit_code == 0 and kept.output.strip() == "purged 0 instances", kept.output
    done = runner.invoke(main, [*args, "--older-than", "0s"])
    assert done.exit_code == 0 and done.output.strip() == "purged 3 instances", done.output
    bad = runner.invoke(main, [*args, "--older-than", "a week"])
    assert bad.exit_code == 1 and "not a duration" in bad.output
    usage = runner.invoke(main, ["--db", store_url, "workflow", "purge"])
    assert usage.exit_code == 2 and "say what to purge" in usage.output
    with wf.WorkflowClient(store_url) as client:
        assert _left(client) == {finished[3]}


def test_http_purges_by_filter(finished: list[str], client: wf.WorkflowClient) -> None:
    from treadle.server.http import create_app

    http = Http(create_app(client))
    try:
        dry = http.post("/api/v1/workflows/purge?status=FAILED&dry_run=true")
        assert dry.status_code == 200 and dry.json() == {"purged": 1, "complete": True}
        bad = http.post("/api/v1/workflows/purge?older_than=soon")
        assert bad.status_code == 400 and "not a duration" in bad.json()["message"]
        done = http.post("/api/v1/workflows/purge?name=echo&older_than=0s")
        assert done.json() == {"purged": 2, "complete": True}
    finally:
        http.close()
    assert _left(client) == {finished[2], finished[3]}


def test_a_runtime_applies_the_retention_policy_on_its_clock(
    make_store: Callable[..., Store],
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    policy = wf.RetentionPolicy(
        completed=timedelta(hours=1), failed=timedelta(days=1), interval=timedelta(minutes=1)
    )
    runtimes = [wf.WorkflowRuntime(store, clock=clock, retention=policy) for _ in range(2)]
    for runtime in runtimes:
        runtime.register_workflow(_echo, name="echo")
        runtime.register_workflow(_boom, name="boom")
        runtime.start()
    try:
        with wf.WorkflowClient(store) as client:
            done = client.schedule_new_workflow("echo", input=1)
            failed = client.schedule_new_workflow("boom")
            finish(client, done)
            finish(client, failed)
            clock.advance(timedelta(minutes=59))
            time.sleep(0.3)  # (a pass or two on a clock short of the hour: nothing to purge)
            assert _left(client) == {done, failed}
            clock.advance(timedelta(minutes=2))
            wait_until(lambda: _left(client) == {failed}, what="the COMPLETED one purged")
            clock.advance(timedelta(days=1))
            wait_until(lambda: _left(client) == set(), what="the FAILED one purged")
    finally:
        for runtime in runtimes:
            runtime.shutdown(timeout=2)


def test_retention_policy_from_a_mapping_on_the_runtime(tmp_path: Path) -> None:
    runtime = wf.WorkflowRuntime(
        f"sqlite:///{tmp_path / 'r.db'}", retention={"COMPLETED": timedelta(days=7)}
    )
    assert runtime.retention == wf.RetentionPolicy(completed=timedelta(days=7))
    with pytest.raises(ValueError, match="not a finished status"):
        wf.WorkflowRuntime(f"sqlite:///{tmp_path / 'r.db'}", retention={"PENDING": timedelta(1)})


def test_a_policy_set_on_the_store_is_applied_by_its_runtimes(
    make_store: Callable[..., Store],
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    assert isinstance(store, Maintenance)
    store.retention = wf.RetentionPolicy(completed=timedelta(hours=1))
    runtime = wf.WorkflowRuntime(store, clock=clock)  # given no policy of its own
    runtime.register_workflow(_echo, name="echo")
    with runtime, wf.WorkflowClient(store) as client:
        finish(client, client.schedule_new_workflow("echo", input=1))
        clock.advance(timedelta(hours=2))
        wait_until(lambda: _left(client) == set(), what="the COMPLETED one purged")


def _with_option(url: str, option: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}"


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_policy_in_the_store_url_is_applied_by_its_runtimes(store_url: str) -> None:
    url = _with_option(store_url, "retention=completed:0s,FAILED:30d,interval:1s")
    store = open_store(url)
    try:
        assert isinstance(store, Maintenance)
        assert store.retention == wf.RetentionPolicy(
            completed=timedelta(0), failed=timedelta(days=30), interval=timedelta(seconds=1)
        )
    finally:
        store.close()
    runtime = wf.WorkflowRuntime(url)  # given no policy of its own: the URL's
    runtime.register_workflow(_echo, name="echo")
    runtime.register_workflow(_boom, name="boom")
    with runtime, wf.WorkflowClient(store_url) as client:
        done = client.schedule_new_workflow("echo", input=1)
        failed = client.schedule_new_workflow("boom")
        finish(client, failed)  # (kept 30 days)
        # not waited for: kept 0 s, it may be gone before a wait could read it; only a
        # COMPLETED instance is purged here, so its going shows it completed
        wait_until(lambda: _left(client) == {failed}, what="the COMPLETED one purged")
        assert done not in _left(client)


@pytest.mark.parametrize(
    "retention, message",
    [
        ("COMPLETED", "'COMPLETED' is not STATUS:DURATION"),
        ("RUNNING:7d", "'RUNNING' is not a finished status"),
        ("COMPLETED:7x", "'7x' is not a duration"),
        ("interval:0s", "interval: a positive timedelta"),
    ],
)
def test_a_bad_retention_in_the_store_url_names_what_is_wrong(
    tmp_path: Path, retention: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}?retention={retention}"
    with pytest.raises(wf.InvalidInputError, match=message) as caught:
        open_store(url)
    assert str(tmp_path) in str(caught.value)  # (the URL, without the option)
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


def test_retention_as_text_on_the_runtime(tmp_path: Path) -> None:
    runtime = wf.WorkflowRuntime(f"sqlite:///{tmp_path / 'r.db'}", retention="COMPLETED:7d")
    assert runtime.retention == wf.RetentionPolicy(completed=timedelta(days=7))
