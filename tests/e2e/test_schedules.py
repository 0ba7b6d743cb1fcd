"""Schedules end to end: runtimes fire slots on their clock (each once, however many run),
catch up after downtime, and the CLI and the HTTP API manage them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main
from treadle.clock import ManualClock
from treadle.server.http import create_app
from treadle.store.base import Store

from .helpers import wait_until
from .test_http_api import Http

START = datetime(2031, 5, 6, 7, 0, 0, tzinfo=timezone.utc)


def _report(ctx: wf.WorkflowContext, payload: Any) -> Any:
    return {"slot": ctx.instance_id.split("@")[1], "payload": payload}
    yield


def _completed(client: wf.WorkflowClient) -> list[str]:
    states = client.list_workflows(status=wf.WorkflowStatus.COMPLETED, page_size=100).states
    return sorted(s.instance_id for s in states)


def test_runtimes_fire_each_slot_once_and_catch_up_after_downtime(
    make_store: Callable[..., Store],
) -> None:
    clock = ManualClock(START)
    stores = [make_store(clock=clock) for _ in range(3)]
    with wf.WorkflowClient(stores[0]) as client:
        client.create_schedule(
            "tick",
            _report,
            every=timedelta(minutes=1),
            input={"n": 1},
            overlap="allow",
            catchup_window=timedelta(minutes=3),
        )
        runtimes = [wf.WorkflowRuntime(s, clock=clock) for s in stores]
        for runtime in runtimes:
            runtime.register_workflow(_report)
            runtime.start()
        try:
            for minute in (1, 2, 3):
                clock.advance(60)
                wait_until(
                    lambda m=minute: len(_completed(client)) == m,  # type: ignore[misc]
                    what=f"{minute} slot(s) fired and finished",
                    state=lambda: _completed(client),
                )
        finally:
            for runtime in runtimes:
                runtime.shutdown(timeout=2)
        expected = [f"tick@2031-05-06T07:0{m}:00Z" for m in (1, 2, 3)]
        assert _completed(client) == expected
        state = client.get_workflow_state(expected[0])
        assert state is not None
        assert json.loads(state.serialized_output or "") == {
            "slot": "2031-05-06T07:01:00Z",
            "payload": {"n": 1},
        }
        clock.advance(timedelta(minutes=10))  # nobody runs: slots 4 .. 13 are missed
        runtime = wf.WorkflowRuntime(stores[0], clock=clock)
        runtime.register_workflow(_report)
        with runtime:
            wait_until(
                lambda: len(_completed(client)) == 7,
                what="the 4 slots inside the catch-up window",
                state=lambda: _completed(client),
            )
        assert _completed(client)[3:] == [f"tick@2031-05-06T07:{m}:00Z" for m in (10, 11, 12, 13)]
        described = client.get_schedule("tick")
        assert described is not None and described.next_slot == START + timedelta(minutes=14)


def test_the_cli_manages_schedules(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--db", url, "schedule", *args])
        assert result.exit_code == 0, result.output
        return result.output

    run(
        "create",
        "nightly",
        "report",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Paris",
        "--input",
        '{"kind": "daily"}',
        "--overlap",
        "buffer_one",
    )
    listed = json.loads(run("list", "-o", "json"))
    assert [(s["schedule_id"], s["spec"]["cron"], s["spec"]["overlap"]) for s in listed] == [
        ("nightly", "0 3 * * *", "buffer_one")
    ]
    assert listed[0]["input"] == '{"kind":"daily"}'
    run("pause", "nightly")
    assert json.loads(run("get", "nightly", "-o", "json"))["paused"] is True
    run("resume", "nightly")
    iid = run("trigger", "nightly").strip()
    assert iid.startswith("nightly@")
    assert iid in run("get", "nightly")
    run("delete", "nightly")
    missing = runner.invoke(main, ["--db", url, "schedule", "pause", "nightly"])
    assert missing.exit_code == 1 and "no schedule with id 'nightly'" in missing.output
    bad = runner.invoke(main, ["--db", url, "schedule", "create", "x", "wf", "--every", "often"])
    assert bad.exit_code == 1 and "not a duration" in bad.output


def test_the_http_api_manages_schedules(client: wf.WorkflowClient) -> None:
    http = Http(create_app(client))
    try:
        body = {"schedule_id": "s", "workflow": "report", "every": "5m", "input": {"a": 1}}
        created = http.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["every_s"] == 300 and created.json()["input"] == '{"a":1}'
        assert http.post("/api/v1/schedules", json=body).status_code == 409
        bad = http.post("/api/v1/schedules", json={**body, "schedule_id": "t", "cron": "x"})
        assert bad.status_code == 400 and "either cron= or every=" in bad.json()["message"]
        assert [s["schedule_id"] for s in http.get("/api/v1/schedules").json()] == ["s"]
        assert http.post("/api/v1/schedules/s/pause").status_code == 200
        assert http.get("/api/v1/schedules/s").json()["paused"] is True
        assert http.post("/api/v1/schedules/s/resume").status_code == 200
        triggered = http.post("/api/v1/schedules/s/trigger")
        assert triggered.status_code == 202 and triggered.json()["instanceID"].startswith("s@")
        assert http.request("DELETE", "/api/v1/schedules/s").status_code == 200
        missing = http.get("/api/v1/schedules/s")
        assert (
            missing.status_code == 404 and missing.json()["errorCode"] == "ERR_SCHEDULE_NOT_FOUND"
        )
    finally:
        http.close()


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_create_schedule_checks_its_options(client: wf.WorkflowClient, overlap: str) -> None:
    if overlap == "skip":
        with pytest.raises(wf.InvalidInputError, match="IANA"):
            client.create_schedule("z", "wf", cron="* * * * *", time_zone="Nowhere/City")
    else:
        with pytest.raises(wf.InvalidInputError, match="overlap"):
            client.create_schedule("z", "wf", every=timedelta(minutes=1), overlap=overlap)
