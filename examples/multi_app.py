"""Multi-app workflows: apps that share one store call each other's activities and workflows.

Dapr runs one sidecar per app (``dapr run --app-id NAME``), all on one state store; treadle
runs one runtime per app, all on one store. A runtime takes its app id from
``WorkflowRuntime(app_id=...)``, else ``$TREADLE_APP_ID``, else ``$APP_ID`` (what ``dapr run``
sets), and runs only its app's work: ``ctx.call_activity(..., app_id="billing")`` and
``ctx.call_child_workflow(..., app_id="shipping")`` send a call to another app, a call with
no app id stays in the caller's. A failure in another app is a ``TaskFailedError`` under the
caller's retry policy; a call to an app that has no worker for it fails after ``app_wait``.

This script is three apps. Run without ``$APP_ID`` it is "orders", and starts "billing" and
"shipping" as processes of their own (itself, with ``APP_ID`` set, as ``dapr run`` would).

Run: ``python examples/multi_app.py`` (the store: ``$TREADLE_STORE``, default
``sqlite:///treadle.db``).
"""

import os
import subprocess
import sys
from datetime import timedelta

import treadle as wf

LAUNCHER = not os.environ.get("APP_ID")
if LAUNCHER:
    os.environ["APP_ID"] = "orders"
APP = os.environ["APP_ID"]

# app_wait: how long a call to another app waits for a worker there (short, for the demo)
runtime = wf.WorkflowRuntime(app_wait=timedelta(seconds=1))


if APP == "billing":

    @runtime.activity
    def charge(ctx: wf.WorkflowActivityContext, order: dict) -> str:
        if order["card"] == "expired":
            raise ValueError(f"card expired for order {order['id']}")
        return f"charged {order['total']:.2f} EUR in app {runtime.app_id!r}"


if APP == "shipping":

    @runtime.activity
    def pack(ctx: wf.WorkflowActivityContext, item: str) -> str:
        return f"{item} packed in app {runtime.app_id!r}"

    @runtime.workflow
    def ship(ctx: wf.DaprWorkflowContext, order: dict):
        # no app id: the activity runs in this workflow's own app, shipping
        parcels = yield wf.when_all([ctx.call_activity(pack, input=i) for i in order["items"]])
        return parcels


if APP == "orders":

    @runtime.workflow
    def place_order(ctx: wf.DaprWorkflowContext, order: dict):
        retry = wf.RetryPolicy(
            first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=2
        )
        try:
            receipt = yield ctx.call_activity(
                "charge", input=order, app_id="billing", retry_policy=retry
            )
        except wf.TaskFailedError as error:
            return {"id": order["id"], "status": "not shipped", "why": error.details.message}
        parcels = yield ctx.call_child_workflow("ship", input=order, app_id="shipping")
        return {"id": order["id"], "status": "shipped", "receipt": receipt, "parcels": parcels}

    @runtime.workflow
    def audit(ctx: wf.DaprWorkflowContext, order: dict):
        try:
            yield ctx.call_activity("record", input=order, app_id="audit")  # no such app runs
        except wf.TaskFailedError as error:
            return error.details.error_type


def serve_app() -> None:
    """Run this app until stdin closes (what the launcher's child processes do)."""
    with runtime:
        print(f"app {APP} ready", flush=True)
        sys.stdin.read()


def main() -> None:
    # Open the store (creating it if need be) before the other apps open it too.
    print(f"apps on one store: {runtime.store.url}", file=sys.stderr)
    apps = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            env={**os.environ, "APP_ID": app},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for app in ("billing", "shipping")
    ]  # fmt: skip
    try:
        for app in apps:
            assert app.stdout is not None
            print(app.stdout.readline().strip())
        orders = [
            {"id": "A-1", "total": 37.5, "card": "valid", "items": ["lamp", "desk"]},
            {"id": "A-2", "total": 12.0, "card": "expired", "items": ["chair"]},
        ]
        with runtime, wf.WorkflowClient() as client:  # the client's app: orders, from $APP_ID
            ids = [client.schedule_new_workflow(place_order, input=o) for o in orders]
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
                print(f"{state.runtime_status.name}: {state.serialized_output}")
            iid = client.schedule_new_workflow(audit, input=orders[0])
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            print(f"A call to app 'audit', which has no worker: {state.serialized_output}")
    finally:
        for app in apps:
            assert app.stdin is not None and app.stdout is not None
            app.stdin.close()
            app.wait(timeout=30)
            app.stdout.close()


if __name__ == "__main__":
    if LAUNCHER:
        main()
    else:
        serve_app()
