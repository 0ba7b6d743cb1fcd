"""Logs and metrics of a real runtime, on SQLite and PostgreSQL: an instance that fails and a
lease taken over are logged at INFO with their fields, and ``/metrics`` (a real HTTP endpoint)
counts runs and activity attempts under Dapr's names, takeovers, commits and waiting work
(workflows and activities)."""

from __future__ import annotations

import logging
import socket
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import treadle as wf
from treadle.store import NewInstance
from treadle.store.base import new_execution_id

from .conftest import EVERY_BACKEND

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)

WAIT_S = 30.0


def _records(
    caplog: pytest.LogCaptureFixture, keep: Callable[[logging.LogRecord], bool]
) -> list[logging.LogRecord]:
    """The captured records ``keep`` keeps, once there are some (the log follows the commit
    a client sees, so it may come a moment later); fails after WAIT_S saying what was seen."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = [r for r in caplog.records if keep(r)]
        if found or time.monotonic() > deadline:
            assert found, [r.getMessage() for r in caplog.records]
            return found
        time.sleep(0.02)


def _scrape_until(port: int, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``done`` (the counts follow the commits a client sees); bounded."""
    deadline = time.monotonic() + WAIT_S
    while True:
        samples = _samples(port)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def _samples(port: int, host: str = "127.0.0.1") -> Samples:
    """Scrape ``/metrics`` on ``port``: each sample's value by name and sorted labels."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The value of the first sample of ``metric`` with ``labels`` (others may be set)."""
    for (sample_name, sample_labels), value in samples.items():
        if sample_name == metric and all((k, v) in sample_labels for k, v in labels.items()):
            return value
    return None


def _register(runtime: wf.WorkflowRuntime) -> None:
    def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
        return 2 * x

    def refuse(ctx: wf.WorkflowActivityContext, x: int) -> int:
        raise ValueError(f"cannot take {x}")

    def good(ctx: wf.DaprWorkflowContext, x: int) -> Any:
        return (yield ctx.call_activity(double, input=x))

    def bad(ctx: wf.DaprWorkflowContext, x: int) -> Any:
        return (yield ctx.call_activity(refuse, input=x))

    runtime.register_activity(double)
    runtime.register_activity(refuse)
    runtime.register_workflow(good)
    runtime.register_workflow(bad)


def test_a_failed_instance_is_logged_with_its_fields(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="treadle")
    runtime = make_runtime(start=False)
    _register(runtime)
    runtime.start()
    iid = client.schedule_new_workflow("bad", input=3)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.FAILED
    records = _records(caplog, lambda r: getattr(r, "instance_id", None) == iid)
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    record = records[0]
    assert record.levelno == logging.INFO
    assert record.name.startswith("treadle.")
    assert record.__dict__["workflow_name"] == "bad"
    assert record.__dict__["error_type"] == "TaskFailedError"
    assert "cannot take 3" in record.__dict__["error_message"]
    assert f"workflow instance {iid} (bad) failed" in record.getMessage()


def test_a_takeover_is_logged_and_counted(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="treadle")
    store = client.store
    store.create_instance(
        NewInstance(instance_id="orphan", name="good", input="4", execution_id=new_execution_id())
    )
    # a worker on another host claimed it, then vanished without releasing its lease
    [item] = store.claim_orchestrations("elsewhere:1:gone", 10, 0.2)
    assert item.taken_from is None
    time.sleep(0.3)
    runtime = make_runtime(start=False, metrics_port=0)
    _register(runtime)
    runtime.start()
    state = client.wait_for_workflow_completion("orphan", timeout_in_seconds=WAIT_S)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    takeovers = _records(caplog, lambda r: bool(getattr(r, "previous_owner", None)))
    assert [(r.__dict__["instance_id"], r.__dict__["previous_owner"]) for r in takeovers] == [
        ("orphan", "elsewhere:1:gone")
    ]
    assert takeovers[0].levelno == logging.INFO
    assert runtime.metrics_port
    samples = _samples(runtime.metrics_port)
    assert _value(samples, "treadle_lease_takeovers_total") == 1.0


def test_metrics_are_scraped_from_a_worker(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    runtime = make_runtime(start=False, metrics_port=0, app_wait=timedelta(seconds=60))
    _register(runtime)
    runtime.start()
    port = runtime.metrics_port
    assert port
    good = [client.schedule_new_workflow("good", input=i) for i in range(3)]
    bad = client.schedule_new_workflow("bad", input=1)
    client.schedule_new_workflow("nobody_runs_this", input=None)  # waits: no worker has it
    for iid in [*good, bad]:
        assert client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT_S) is not None
    count = "dapr_runtime_workflow_execution_count"
    samples = _scrape_until(
        port,
        lambda got: (
            _value(got, count, workflow_name="bad", status="failed") == 1.0
            and _value(got, count, workflow_name="good", status="success") == 3.0
        ),
    )
    assert _value(samples, count, workflow_name="good", status="success") == 3.0
    assert _value(samples, count, workflow_name="bad", status="failed") == 1.0
    latency = "dapr_runtime_workflow_execution_latency_count"
    assert _value(samples, latency, workflow_name="good", status="success") == 3.0
    activities = "dapr_runtime_workflow_activity_execution_count"
    assert _value(samples, activities, activity_name="double", status="success") == 3.0
    assert _value(samples, activities, activity_name="refuse", status="failed") == 1.0
    assert (
        _value(
            samples,
            "dapr_runtime_workflow_activity_execution_latency_count",
            activity_name="double",
            status="success",
        )
        == 3.0
    )
    commits = _value(samples, "treadle_commit_latency_seconds_count")
    assert commits is not None and commits >= 1
    assert _value(samples, "treadle_queue_depth", kind="workflow", name="nobody_runs_this") == 1.0
    age = _value(
        samples, "treadle_queue_oldest_age_seconds", kind="workflow", name="nobody_runs_this"
    )
    assert age is not None and age >= 0.0
    assert _value(samples, "treadle_store_up") == 1.0
    assert _value(samples, "treadle_lease_takeovers_total") == 0.0


def test_metrics_are_served_on_the_host_asked(
    make_runtime: Callable[..., wf.WorkflowRuntime],
) -> None:
    runtime = make_runtime(start=False, metrics_port=0, metrics_host="::1")
    _register(runtime)
    runtime.start()
    port = runtime.metrics_port
    assert port
    assert _value(_samples(port, "[::1]"), "treadle_store_up") == 1.0
    with pytest.raises(OSError):  # (not on every interface: not on 127.0.0.1)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_metrics_are_served_on_this_machine_only_by_default(
    make_runtime: Callable[..., wf.WorkflowRuntime],
) -> None:
    runtime = make_runtime(start=False, metrics_port=0)
    _register(runtime)
    assert runtime.metrics_host == "127.0.0.1"
    runtime.start()
    assert runtime.metrics_port
    assert _value(_samples(runtime.metrics_port), "treadle_store_up") == 1.0


def test_an_activity_nobody_runs_is_a_waiting_activity(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    def bills(ctx: wf.DaprWorkflowContext, x: int) -> Any:
        return (yield ctx.call_activity("bill", input=x, app_id="billing"))

    runtime = make_runtime(start=False, metrics_port=0, app_wait=timedelta(seconds=60))
    runtime.register_workflow(bills)
    runtime.start()
    assert runtime.metrics_port
    client.schedule_new_workflow("bills", input=1)  # its call waits for the app "billing"
    depth = "treadle_queue_depth"
    samples = _scrape_until(
        runtime.metrics_port, lambda got: _value(got, depth, kind="activity", name="bill") == 1.0
    )
    assert _value(samples, depth, kind="activity", name="bill") == 1.0
    age = _value(samples, "treadle_queue_oldest_age_seconds", kind="activity", name="bill")
    assert age is not None and age >= 0.0
