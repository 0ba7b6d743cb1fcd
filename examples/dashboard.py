"""See what workflows do: the web dashboard, a graph, a timeline.

Runs three workflows on a store (a fan-out of 20 activities, a call retried until its third
attempt, and an order that starts a child workflow and then waits for an approval event),
prints the fan-out's graph as Mermaid text (what ``treadle workflow graph ID`` prints),
writes it as SVG, and serves the dashboard on a free local port, where it checks that the
list and the order's page answer. The order's page shows it waiting on the event
``approve``: the dashboard runs in this process, beside the workflows' code.

Run: ``python examples/dashboard.py`` (add ``--serve`` to keep the dashboard open until
the order is approved from its page, or Ctrl-C). The same dashboard, for any store:
``treadle dashboard --db URL``, or ``/`` of ``treadle serve``.
"""

import contextlib
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import timedelta

import treadle as wf
from treadle.core.visual import build_graph, fold, render_graph_svg, render_mermaid
from treadle.server.http import create_app
from treadle.server.http_server import HttpServer

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'dashboard.db')}"
)

runtime = wf.WorkflowRuntime(STORE)
attempts: Counter[str] = Counter()


@runtime.activity
def price(ctx: wf.WorkflowActivityContext, item: int) -> int:
    return 10 + item


@runtime.activity
def reserve(ctx: wf.WorkflowActivityContext, order: str) -> str:
    attempts[ctx.task_execution_id] += 1
    if attempts[ctx.task_execution_id] < 3:
        raise ConnectionError("the warehouse did not answer")
    return f"{order} reserved"


@runtime.workflow
def quote(ctx: wf.WorkflowContext, items: int):
    prices = yield wf.when_all([ctx.call_activity(price, input=i) for i in range(items)])
    return sum(prices)


@runtime.workflow
def reservation(ctx: wf.WorkflowContext, order: str):
    retry = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=4
    )
    return (yield ctx.call_activity(reserve, input=order, retry_policy=retry))


@runtime.workflow
def order(ctx: wf.WorkflowContext, order_id: str):
    ctx.set_custom_status("reserving")
    reserved = yield ctx.call_child_workflow(reservation, input=order_id)
    ctx.set_custom_status("waiting for approval")
    approved_by = yield ctx.wait_for_external_event("approve")
    return f"{reserved}, approved by {approved_by}"


def wait_for_approval(client: wf.DaprWorkflowClient, iid: str, timeout_s: float = 30) -> None:
    """Wait until the order waits on its event: its child's completion is not enough (the
    order's own turn that takes the child's result comes after it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get_workflow_state(iid)
        status = state.serialized_custom_status if state is not None else None
        if status == '"waiting for approval"':
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {iid} not waiting for approval after {timeout_s}s: {status}")
        time.sleep(0.01)


def main() -> None:
    with runtime:
        client = wf.DaprWorkflowClient(STORE)
        fan_out = client.schedule_new_workflow(quote, input=20)
        state = client.wait_for_workflow_completion(fan_out, timeout_in_seconds=30)
        print(f"quote {state.runtime_status.name}: {state.serialized_output}")
        iid = client.schedule_new_workflow(order, input="A-1")
        wait_for_approval(client, iid)

        graph = build_graph(fold(client.get_workflow_history(fan_out)))
        print(render_mermaid(graph), end="")
        svg_path = os.path.join(tempfile.gettempdir(), "treadle-quote-graph.svg")
        with open(svg_path, "w") as out:
            out.write(render_graph_svg(graph))
        print(f"Graph written to {svg_path}")

        app = create_app(client, lookup=runtime.registered_workflow)
        server = HttpServer(app, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            with urllib.request.urlopen(f"{base}/") as page:
                print(f"Dashboard: {base}/ answers {page.status}")
            with urllib.request.urlopen(f"{base}/ui/instances/{iid}") as page:
                text = page.read().decode()
            if "external event &#39;approve&#39;" in text:
                print("The order's page shows it waiting on event 'approve'.")
            if "--serve" in sys.argv:
                print(f"Open {base}/ ; raise 'approve' from the order's page, or press Ctrl-C.")
                with contextlib.suppress(KeyboardInterrupt):
                    client.wait_for_workflow_completion(iid, timeout_in_seconds=0)
        finally:
            server.stop()
        client.raise_workflow_event(iid, "approve", data="alice")
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        print(f"order {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
