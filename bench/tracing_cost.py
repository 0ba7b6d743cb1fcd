"""``python -m bench.tracing_cost WORKLOAD N STORE``: one run of W3 (a chain of N steps) or
W1b (N three-step task chains at once), runtime and client in one process, for instruction
counts under callgrind (``bench/results/tracing-overhead.txt`` says how).

``TREADLE_BENCH_OBSERVABILITY=1`` turns metrics and traces on, as for ``--observability``.
Two sizes per mode give the cost per step without the start-up (imports, schema).
"""

from __future__ import annotations

import sys

import treadle as wf
from bench.app import build_runtime, long_chain, task_chain


def main(argv: list[str]) -> None:
    """Run the workload named by ``argv`` (see the module)."""
    workload, n, store = argv[0], int(argv[1]), argv[2]
    runtime = build_runtime(store)
    runtime.start()
    try:
        with wf.WorkflowClient(store) as client:
            if workload == "W3":
                ids = [client.schedule_new_workflow(long_chain, input=n)]
            else:
                ids = [client.schedule_new_workflow(task_chain, input=i) for i in range(n)]
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=3600)
                assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    finally:
        runtime.shutdown()
    if runtime.tracing is not None:  # (its batch processor exports what is left)
        shutdown = getattr(runtime.tracing.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()
    print(f"{workload} {n} done")


if __name__ == "__main__":
    main(sys.argv[1:])
