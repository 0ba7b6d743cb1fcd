"""Async HTTP APIs: start a long-running workflow over HTTP, then poll its status.

The Dapr page's pattern, against ``treadle serve``: a POST starts the workflow and answers
202 with its instance id at once; GETs report ``runtimeStatus`` and ``properties`` until the
work is done. By hand, with ``treadle serve --app async_http_api:runtime`` running::

    curl -i -X POST "localhost:3500/v1.0/workflows/dapr/process_order/start?instanceID=o-1" \\
         -d '{"item": "lamp", "quantity": 2}'
    curl -s localhost:3500/v1.0/workflows/dapr/o-1

This script does the same: it starts ``treadle serve`` on free ports with this file's runtime
loaded through ``--app``, then drives it with plain HTTP requests, and reads the API's own
description at ``/openapi.json``.

Run: ``python examples/async_http_api.py``.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'async_http_api.db')}"
)
WORK_S = 0.05 if os.environ.get("EXAMPLE_FAST") == "1" else 1.0

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def reserve(ctx: wf.WorkflowActivityContext, order: dict) -> str:
    time.sleep(WORK_S)  # slow work: the HTTP caller does not wait for it
    return f"reserved {order['quantity']} x {order['item']}"


@runtime.workflow
def process_order(ctx: wf.DaprWorkflowContext, order: dict):
    ctx.set_custom_status("reserving")
    reservation = yield ctx.call_activity(reserve, input=order)
    ctx.set_custom_status("done")
    return {"order": order, "reservation": reservation}


def call(method: str, url: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"{}")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    serve = subprocess.Popen(
        [sys.executable, "-m", "treadle.cli", "--db", STORE, "serve",
         "--app", "async_http_api:runtime", "--grpc-port", "0", "--http-port", "0"],
        cwd=here, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()  # "treadle serve: grpc 127.0.0.1:N http 127.0.0.1:M"
        root = f"http://{line.split(' http ')[1].strip()}"
        base = f"{root}/v1.0/workflows/dapr"
        instance_id = f"order-{int(time.time() * 1000)}"
        status, body = call(
            "POST", f"{base}/process_order/start?instanceID={instance_id}",
            {"item": "lamp", "quantity": 2},
        )  # fmt: skip
        print(f"POST start -> {status} {json.dumps(body)}")
        while True:
            status, body = call("GET", f"{base}/{instance_id}")
            print(f"GET -> {status} runtimeStatus={body['runtimeStatus']}")
            if body["runtimeStatus"] in ("COMPLETED", "FAILED", "TERMINATED"):
                break
            time.sleep(WORK_S / 2)
        print(f"Output: {body['properties']['dapr.workflow.output']}")
        print(f"Custom status: {body['properties']['dapr.workflow.custom_status']}")
        # The whole HTTP API, described for client generators and API fuzzers:
        status, spec = call("GET", f"{root}/openapi.json")
        start = spec["paths"]["/v1.0/workflows/{component}/{name}/start"]["post"]
        print(f"OpenAPI {spec['openapi']}: {len(spec['paths'])} paths; start: {start['summary']}")
    finally:
        serve.terminate()
        serve.wait(timeout=30)


if __name__ == "__main__":
    main()
