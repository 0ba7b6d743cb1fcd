"""``python -m bench.tracing_cost WORKLOAD N STORE``: one run of W3 (a chain of N steps) or
W1b (N three-step task chains at once), runtime and client in one process; prints the CPU
time of the process (all its threads) from the first start to the last completion, per step
(``bench/results/tracing-overhead.txt`` says how it is used).

``TREADLE_BENCH_OBSERVABILITY=1`` turns metrics and traces on, ``metrics`` metrics alone, as
for ``--observability``. Start-up (imports, schema) is outside the measured span, so one size
per mode does; runs of the modes interleaved share the machine's drift.
"""

from __future__ import annotations

import sys
import time

import treadle as wf
from bench.app import build_runtime, long_chain, task_chain


def main(argv: list[str]) -> None:
    """Run the workload named by ``argv`` (see the module)."""
    workload, n, store = argv[0], int(argv[1]), argv[2]
    runtime = build_runtime(store)
    runtime.start()
    try:
        with wf.WorkflowClient(store) as client:
            began = time.process_time()
            if workload == "W3":
                ids = [client.schedule_new_workflow(long_chain, input=n)]
            else:
                ids = [client.schedule_new_workflow(task_chain, input=i) for i in range(n)]
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=3600)
                assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
            cpu = time.process_time() - began
    finally:
        runtime.shutdown()
    if runtime.tracing is not None:  # (its batch processor exports what is left)
        shutdown = getattr(runtime.tracing.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()
    steps = n if workload == "W3" else 3 * n
    print(f"{workload} {n} cpu_s {cpu:.4f} cpu_us_per_step {cpu / steps * 1e6:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
