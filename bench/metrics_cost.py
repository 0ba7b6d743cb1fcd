"""The instructions the runtime's metrics cost per step, for callgrind: one process runs a
runtime and a client on one store and does a W3 chain of ``--steps`` steps, or W1b's
``--chains`` task chains started at once, with metrics on or off (and traces: ``--traces on``,
every span recorded through the SDK's batch processor to an exporter that drops them).

    valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python -m bench.metrics_cost --url sqlite:///X.db --workload W3 --size 1300 --metrics on

Instruction counts do not depend on the machine's load: the cost of a step is the difference
of two sizes (e.g. 1300 and 300 steps) divided by the steps between them, which leaves out
the start-up; on minus off is what the metrics cost (see ``bench/results/metrics-overhead.txt``).
The threads' idle loops still depend on timing (a run under valgrind is slow), which leaves
a few percent of noise per step; ``--workload records`` measures the metrics' own code
without it: ``--size`` times what a W3 step records (one activity attempt, one commit of one
turn), in one thread, with no runtime.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone

import treadle as wf
from bench import app
from bench.observability import ENV
from bench.workloads import start_and_wait


def main(argv: list[str] | None = None) -> int:
    """Run the workload once and exit (0: it returned what it should)."""
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--url", required=True)
    parser.add_argument("--workload", choices=("W3", "W1b", "records"), default="W3")
    parser.add_argument("--size", type=int, default=300, help="W3: steps; W1b: chains")
    parser.add_argument("--metrics", choices=("on", "off"), default="off")
    parser.add_argument(
        "--traces", choices=("on", "off"), default="off", help="spans (app.traced_provider)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    os.environ[ENV] = {
        ("off", "off"): "0",
        ("on", "off"): "metrics",
        ("off", "on"): "traces",
        ("on", "on"): "1",
    }[args.metrics, args.traces]
    if args.workload == "records":
        record_steps(args.size, metrics=args.metrics == "on")
        return 0
    with app.build_runtime(args.url), wf.WorkflowClient(args.url) as client:
        if args.workload == "W3":
            start_and_wait(client, "long_chain", [args.size], [args.size], args.timeout)
        else:
            inputs = range(args.size)
            expected = [app.task_chain_result(i) for i in inputs]
            start_and_wait(client, "task_chain", inputs, expected, args.timeout)
    return 0


def record_steps(steps: int, *, metrics: bool) -> None:
    """Tell an observer ``steps`` times what a W3 step tells it: an activity attempt ended,
    and a round of one (unfinished) turn was committed."""
    from treadle.clock import SystemClock
    from treadle.core.history import OrchestrationStatus, TaskCompleted
    from treadle.runtime.metrics import WorkerMetrics
    from treadle.runtime.observe import Observer
    from treadle.runtime.prepare import PendingTurn
    from treadle.store.base import ActivityWorkItem, CommitOutcome, TurnCommit

    observer = Observer(WorkerMetrics("bench") if metrics else None, SystemClock())
    # (what an activity thread calls, as the engine hands it the metrics' own method)
    activity_done = observer.metrics.activity_done if observer.metrics is not None else None
    item = ActivityWorkItem(1, "i", "e", 1, "increment", "1", "t")
    event = TaskCompleted(timestamp=datetime.now(timezone.utc), task_scheduled_id=1, result="2")
    commit = TurnCommit("i", 1, [event], 2, OrchestrationStatus.RUNNING, "e")
    pending = {"i": PendingTurn("i", commit=commit)}
    outcomes = {"i": CommitOutcome("i", True, 2)}
    for _ in range(steps):
        if activity_done is not None:
            activity_done(item, event, 0.0004)
        observer.committed(pending, outcomes, 0.0011)


if __name__ == "__main__":
    raise SystemExit(main())
