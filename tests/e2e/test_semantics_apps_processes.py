"""Apps in separate processes on one store (as one process per ``dapr run --app-id``): calls
go to the process of the app they name; without app ids, each worker process takes only what
it registered."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import treadle as wf

from .helpers import Workflow, decoded, finish, waiting_reason

WORKER = textwrap.dedent(
    """
    import os
    import sys

    import treadle as wf

    store, app, role = sys.argv[1], sys.argv[2], sys.argv[3]
    runtime = wf.WorkflowRuntime(store)  # its app from $APP_ID, as `dapr run` sets it
    assert runtime.app_id == app, (runtime.app_id, app)

    if role in ("app", "activity"):
        @runtime.activity(name="where")
        def where(ctx, _):
            return {"app": runtime.app_id, "pid": os.getpid()}

    if role == "app":
        @runtime.workflow(name="ship")
        def ship(ctx, n):
            here = yield ctx.call_activity("where")
            return [here, n]

    with runtime:
        print("ready", flush=True)
        sys.stdin.read()  # run until the test closes our stdin
    """
)


def _spawn_app(
    spawn: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
    store_url: str,
    app: str,
    role: str = "app",
) -> subprocess.Popen[str]:
    script = tmp_path / "app_worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "APP_ID": app}
    env.pop("TREADLE_APP_ID", None)
    proc = spawn(script, store_url, app, role, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    with proc.stdout:  # (it prints nothing more)
        assert proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0


def test_calls_go_to_the_process_of_the_app_they_name(
    tmp_path: Path,
    store_url: str,
    make_runtime: Callable[..., wf.WorkflowRuntime],
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    billing = _spawn_app(spawn, tmp_path, store_url, "billing")
    shipping = _spawn_app(spawn, tmp_path, store_url, "shipping")
    orders = make_runtime(start=False, app_id="orders")

    @orders.workflow
    def order(ctx: wf.WorkflowContext, n: int) -> Workflow[list[Any]]:
        paid = yield ctx.call_activity("where", app_id="billing")
        shipped = yield ctx.call_child_workflow("ship", input=n, app_id="shipping")
        return [paid, shipped]

    orders.start()
    with wf.WorkflowClient(store_url, app_id="orders") as client:
        state = finish(client, client.schedule_new_workflow(order, input=7), timeout=30)
    paid, shipped = decoded(state.serialized_output)
    assert paid == {"app": "billing", "pid": billing.pid}
    assert shipped == [{"app": "shipping", "pid": shipping.pid}, 7]
    _stop(billing)
    _stop(shipping)


def test_without_app_ids_each_process_takes_only_what_it_registered(
    tmp_path: Path,
    store_url: str,
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    flows = make_runtime(start=False, app_id="")

    @flows.workflow
    def flow(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_activity("where"))

    flows.start()
    bystander = _spawn_app(spawn, tmp_path, store_url, "", role="none")
    iid = client.schedule_new_workflow(flow)
    assert "activity 'where'" in waiting_reason(client, iid)
    worker = _spawn_app(spawn, tmp_path, store_url, "", role="activity")
    state = finish(client, iid, timeout=30)
    assert decoded(state.serialized_output) == {"app": "", "pid": worker.pid}
    _stop(worker)
    _stop(bystander)
