"""``python -m bench.tracing_spans_cost [N]``: what one activity attempt's span costs in a
tight loop (``Tracing.activity_started`` and ``the attempt's ``finished``), recorded by
:mod:`treadle.runtime.tracing_spans` ("light") and by the OpenTelemetry SDK's
``Tracer.start_span`` ("sdk"), to the batch processor of ``bench.app.traced_provider``; seven
rounds of N attempts each, the two interleaved, process CPU time (the batch processor's
thread included); medians (``bench/results/tracing-overhead.txt``)."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from datetime import datetime, timezone

from bench.app import traced_provider
from treadle.core.history import (
    ExecutionStarted,
    OrchestrationStatus,
    TaskCompleted,
    TraceContext,
)
from treadle.runtime.tracing import Tracing
from treadle.store.base import ActivityWorkItem, TurnCommit

T0 = datetime(2026, 1, 2, tzinfo=timezone.utc)
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _tracing(light: bool) -> Tracing:
    """A Tracing that knows one traced run, its spans light or the SDK's."""
    started = ExecutionStarted(timestamp=T0, name="order", instance_id="i1", execution_id="e1")
    tracing = Tracing(lambda iid: [started], traced_provider())
    first = dataclasses.replace(started, trace=TraceContext(PARENT))
    commit = TurnCommit(
        instance_id="i1",
        expected_version=0,
        new_events=[first],
        history_start=0,
        status=OrchestrationStatus.RUNNING,
        execution_id="e1",
    )
    tracing.stamp(commit)
    if not light:
        tracing.spans = tracing.provider.get_tracer("treadle-sdk-path")
    return tracing


def main(argv: list[str]) -> None:
    """Print the median CPU time of an attempt's span each way (see the module)."""
    n = int(argv[0]) if argv else 20_000
    item = ActivityWorkItem(
        id=7, instance_id="i1", execution_id="e1", task_id=3, name="greet", input=None,
        task_execution_id="x",
    )  # fmt: skip
    done = TaskCompleted(timestamp=T0, task_scheduled_id=3)
    tracings = {True: _tracing(True), False: _tracing(False)}
    took: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(7):
        for light in (True, False) if round_ % 2 else (False, True):
            tracing = tracings[light]
            began = time.process_time()
            for _ in range(n):
                attempt = tracing.activity_started(item)
                assert attempt is not None
                attempt.finished(done)
            flush = getattr(tracing.provider, "force_flush", None)
            if flush is not None:
                flush()
            took[light].append((time.process_time() - began) / n * 1e6)
    sdk, light_us = statistics.median(took[False]), statistics.median(took[True])
    print(f"sdk   us/attempt {sdk:.1f}  ({' '.join(f'{x:.1f}' for x in took[False])})")
    print(f"light us/attempt {light_us:.1f}  ({' '.join(f'{x:.1f}' for x in took[True])})")
    print(f"light/sdk {light_us / sdk:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
