"""W1a in one process: the runtime and the client side by side, as the seed's code runs them
(and as a DBOS application always runs). Run by the driver as ``python -m bench.inproc``.

Here a start is taken by the runtime of the same process (see :mod:`treadle.runtime.local`):
its first turn is committed with the instance.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import treadle as wf
from bench import app
from bench.procs import peak_rss_mib


def main(argv: list[str] | None = None) -> int:
    """Start a runtime and a client on one store, time task chains one at a time, write the
    latencies (ms) and this process's peak RSS as JSON to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench.inproc")
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    latencies: list[float] = []
    with app.build_runtime(args.url), wf.WorkflowClient(args.url) as client:
        for i in range(args.warmup + args.size):
            start = time.perf_counter()
            iid = client.schedule_new_workflow(app.task_chain, input=i)
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=args.timeout)
            if i >= args.warmup:
                latencies.append((time.perf_counter() - start) * 1000)
            output = json.loads((state.serialized_output if state else None) or "null")
            if output != app.task_chain_result(i):
                raise SystemExit(f"task_chain({i}) returned {output!r}")
    args.out.write_text(json.dumps({"latencies_ms": latencies, "peak_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
