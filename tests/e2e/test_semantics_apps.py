"""Apps on one store, several runtimes in one process: work goes to its app's workers, and
within an app to the workers that registered it; failures cross apps as TaskFailedError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import treadle as wf

from .helpers import Workflow, decoded, finish, status_of, waiting_reason

FAST_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=3
)


def _where(app: str) -> Callable[[wf.WorkflowActivityContext, Any], str]:
    def where(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        return app

    return where


def _app(
    make_runtime: Callable[..., wf.WorkflowRuntime], app_id: str, **options: Any
) -> wf.WorkflowRuntime:
    """An unstarted runtime of ``app_id`` whose activity ``where`` says which app ran it."""
    runtime = make_runtime(start=False, app_id=app_id, **options)
    runtime.register_activity(_where(app_id), name="where")
    return runtime


def test_a_call_runs_in_the_app_it_names_else_in_the_callers(
    make_runtime: Callable[..., wf.WorkflowRuntime], store_url: str
) -> None:
    orders, billing = _app(make_runtime, "orders"), _app(make_runtime, "billing")

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[list[str]]:
        here = yield ctx.call_activity("where")
        there = yield ctx.call_activity("where", app_id="billing")
        return [here, there]

    orders.start()
    billing.start()
    with wf.WorkflowClient(store_url, app_id="orders") as client:
        state = finish(client, client.schedule_new_workflow(order))
    assert decoded(state.serialized_output) == ["orders", "billing"]


def test_a_child_runs_in_the_app_it_names_and_its_calls_stay_there(
    make_runtime: Callable[..., wf.WorkflowRuntime], store_url: str
) -> None:
    orders, shipping = _app(make_runtime, "orders"), _app(make_runtime, "shipping")

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_child_workflow("ship", input=3, app_id="shipping"))

    @shipping.workflow(name="ship")
    def ship(ctx: wf.WorkflowContext, n: int) -> Workflow[list[Any]]:
        where = yield ctx.call_activity("where")
        return [where, n]

    orders.start()
    shipping.start()
    with wf.WorkflowClient(store_url, app_id="orders") as client:
        iid = client.schedule_new_workflow(order)
        state = finish(client, iid)
        child = client.store.get_instance(f"{iid}:0001")
    assert decoded(state.serialized_output) == ["shipping", 3]
    assert child is not None and child.app_id == "shipping"


def test_a_client_starts_workflows_in_its_app(
    make_runtime: Callable[..., wf.WorkflowRuntime], store_url: str
) -> None:
    runtimes = [_app(make_runtime, app) for app in ("orders", "billing")]
    for runtime in runtimes:
        runtime.register_workflow(lambda ctx, _: (yield ctx.call_activity("where")), name="wf")
        runtime.start()
    for app in ("billing", "orders"):
        with wf.WorkflowClient(store_url, app_id=app) as client:
            state = finish(client, client.schedule_new_workflow("wf"))
            assert decoded(state.serialized_output) == app
            record = client.store.get_instance(state.instance_id)
            assert record is not None and record.app_id == app


def test_an_activity_failing_in_another_app_is_retried_by_the_callers_policy(
    make_runtime: Callable[..., wf.WorkflowRuntime], store_url: str
) -> None:
    orders = make_runtime(start=False, app_id="orders")
    billing = make_runtime(start=False, app_id="billing")
    attempts: list[int] = []
    lock = threading.Lock()

    @billing.activity(name="charge")
    def charge(ctx: wf.WorkflowActivityContext, amount: int) -> None:
        with lock:
            attempts.append(amount)
        raise ValueError(f"card declined for {amount}")

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[list[str]]:
        try:
            yield ctx.call_activity("charge", input=5, app_id="billing", retry_policy=FAST_RETRY)
        except wf.TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message]
        return []

    orders.start()
    billing.start()
    with wf.WorkflowClient(store_url, app_id="orders") as client:
        state = finish(client, client.schedule_new_workflow(order))
    assert decoded(state.serialized_output) == ["ValueError", "card declined for 5"]
    assert attempts == [5, 5, 5]


def test_a_child_failing_in_another_app_is_retried_by_the_callers_policy(
    make_runtime: Callable[..., wf.WorkflowRuntime], store_url: str
) -> None:
    orders = make_runtime(start=False, app_id="orders")
    shipping = make_runtime(start=False, app_id="shipping")

    @shipping.workflow(name="ship")
    def ship(ctx: wf.WorkflowContext, _: Any) -> Workflow[None]:
        raise RuntimeError("no truck")
        yield  # pragma: no cover - makes this a generator

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[str]:
        try:
            yield ctx.call_child_workflow("ship", app_id="shipping", retry_policy=FAST_RETRY)
        except wf.TaskFailedError as exc:
            return exc.details.message
        return "not reached"

    orders.start()
    shipping.start()
    with wf.WorkflowClient(store_url, app_id="orders") as client:
        iid = client.schedule_new_workflow(order)
        state = finish(client, iid)
        tries = [
            e
            for e in client.get_workflow_history(iid)
            if e.KIND == "SubOrchestrationInstanceCreated"
        ]
    assert decoded(state.serialized_output) == "no truck"
    assert len(tries) == 3


def test_without_app_ids_workers_take_only_what_they_registered(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    bystander = make_runtime()  # registers nothing: it must not fail anything
    flows = make_runtime(start=False)

    @flows.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        return (yield ctx.call_activity("step", input=n))

    flows.start()
    iid = client.schedule_new_workflow(flow, input=4)
    reason = waiting_reason(client, iid)  # no worker has "step" yet
    assert "activity 'step'" in reason and "register_activity" in reason
    assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
    steps = make_runtime(start=False)
    steps.register_activity(lambda ctx, n: n * 10, name="step")
    steps.start()
    state = finish(client, iid)
    assert (state.runtime_status, decoded(state.serialized_output)) == (
        wf.WorkflowStatus.COMPLETED,
        40,
    )
    assert state.waiting_reason is None
    assert bystander.workflow_names == bystander.activity_names == []


def test_app_ids_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.delenv("TREADLE_APP_ID", raising=False)
    monkeypatch.setenv("APP_ID", "from-dapr-run")
    runtime = wf.WorkflowRuntime(store_url)
    with wf.WorkflowClient(store_url) as client:
        assert runtime.app_id == client.app_id == "from-dapr-run"
    monkeypatch.setenv("TREADLE_APP_ID", "chosen")
    with wf.WorkflowClient(store_url) as client:
        assert wf.WorkflowRuntime(store_url).app_id == client.app_id == "chosen"
    with wf.WorkflowClient(store_url, app_id="") as client:
        assert wf.WorkflowRuntime(store_url, app_id="").app_id == client.app_id == ""


def test_an_instance_nobody_runs_can_still_be_terminated(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    # Any worker of the instance's app takes a termination, whatever the workflow.
    make_runtime()  # registers nothing
    unknown = client.schedule_new_workflow("no_such_workflow")
    waiting_reason(client, unknown)
    client.terminate_workflow(unknown, output="typo")
    state = finish(client, unknown)
    assert (state.runtime_status, decoded(state.serialized_output)) == (
        wf.WorkflowStatus.TERMINATED,
        "typo",
    )
    # started by a worker that is gone since: terminated by one that does not have it
    owner = make_runtime(start=False)
    owner.register_workflow(lambda ctx, _: (yield ctx.wait_for_external_event("go")), name="w")
    owner.start()
    iid = client.schedule_new_workflow("w")
    client.wait_for_workflow_start(iid, timeout_in_seconds=10)
    owner.shutdown()
    client.terminate_workflow(iid, output="stopped")
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    kinds_ = [e.KIND for e in client.get_workflow_history(iid)]
    assert kinds_[-2:] == ["ExecutionTerminated", "ExecutionCompleted"]
