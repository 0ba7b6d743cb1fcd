"""Observability: the log records and Prometheus metrics of a worker.

A workflow that fails is logged at INFO by the ``treadle`` loggers, with its instance id,
workflow name, error type and message as record attributes (``treadle worker --log-format
json`` writes them as JSON fields). ``metrics_port`` serves Prometheus metrics with Dapr's
names (``dapr_runtime_workflow_execution_count`` and the others) and treadle's own (queue
depth, takeovers, commit latency); this script scrapes them as Prometheus would. Last, the
stack of every thread, which ``kill -USR1 PID`` makes ``treadle worker`` and ``treadle serve``
write to stderr when they seem stuck.

Run: ``python examples/observability.py`` (needs ``pip install 'treadle[metrics]'``).
"""

import io
import logging
import os
import tempfile
import time
import urllib.request
from collections.abc import Generator

import treadle as wf
from treadle.runtime.logs import write_stacks

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'observability.db')}"
)


class FailureFields(logging.Handler):
    """Prints the fields treadle puts on the record of a failed instance."""

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "error_type"):
            fields = {k: getattr(record, k) for k in ("workflow_name", "error_type")}
            print(f"Logged at {record.levelname} by {record.name}: {fields}")


logging.getLogger("treadle").setLevel(logging.INFO)
logging.getLogger("treadle").addHandler(FailureFields())

# 0: any free port; on 127.0.0.1 (this machine only): "0.0.0.0" for a scraper elsewhere
runtime = wf.WorkflowRuntime(STORE, metrics_port=0, metrics_host="127.0.0.1")


@runtime.activity
def reserve(ctx: wf.WorkflowActivityContext, item: str) -> str:
    if item == "unicorn":
        raise ValueError(f"{item} is out of stock")
    return f"reserved {item}"


@runtime.workflow
def order(ctx: wf.DaprWorkflowContext, item: str) -> Generator[wf.Task[str], str, str]:
    return (yield ctx.call_activity(reserve, input=item))


def scrape(port: int) -> list[str]:
    """The Dapr workflow lines of ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith(
            (
                "dapr_runtime_workflow_execution_count",
                "dapr_runtime_workflow_activity_execution_count",
            )
        )
    ]


def main() -> None:
    with runtime, wf.WorkflowClient(STORE) as client:
        for item in ("lamp", "unicorn"):
            iid = client.schedule_new_workflow(order, input=item)
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            assert state is not None
            print(f"Order of {item}: {state.runtime_status.name}")
        port = runtime.metrics_port
        assert port is not None
        # the counts follow the commit a client sees by a moment
        deadline = time.monotonic() + 10
        lines = scrape(port)
        while len(lines) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
            lines = scrape(port)
        print(f"Metrics at http://127.0.0.1:{port}/metrics:")
        for line in sorted(lines):
            print("  " + line.replace(',namespace=""', ""))
        # where every thread is: what `kill -USR1 PID` makes `treadle worker` and `treadle
        # serve` write to stderr (here into a buffer)
        stacks = io.StringIO()
        write_stacks(stacks)
        heads = [line for line in stacks.getvalue().splitlines() if line.startswith("Stack of")]
        names = sorted({head.split()[3] for head in heads if "treadle-" in head})
        print(f"Stacks of {len(heads)} threads, the runtime's among them: {', '.join(names)}")


if __name__ == "__main__":
    main()
