"""W1a and W1b in one process: the runtime and the client side by side, as the seed's code
runs them (and as a DBOS application always runs). Run by the driver as
``python -m bench.inproc``.

Here a start is taken by the runtime of the same process (see :mod:`treadle.store.local_starts`):
its first turn is committed with the instance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import treadle as wf
from bench import app
from bench.procs import peak_rss_mib
from bench.workloads import start_and_wait, time_task_chains


def main(argv: list[str] | None = None) -> int:
    """Start a runtime and a client on one store, run the workload, and write its figures
    and this process's peak RSS as JSON to ``--out``.

    W1a: task chains one at a time (``latencies_ms``, after ``--warmup`` untimed ones).
    W1b: ``--size`` task chains started at once, then waited for (``elapsed_s`` from the
    first start to the last completion, ``scheduling_s`` for the starts alone).
    """
    parser = argparse.ArgumentParser(prog="python -m bench.inproc")
    parser.add_argument("--workload", choices=("W1a", "W1b"), default="W1a")
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    result: dict[str, Any]
    with app.build_runtime(args.url), wf.WorkflowClient(args.url) as client:
        if args.workload == "W1a":
            latencies = time_task_chains(client, args.size, args.warmup, args.timeout)
            result = {"latencies_ms": latencies}
        else:
            inputs = range(args.size)
            expected = [app.task_chain_result(i) for i in inputs]
            elapsed, scheduling = start_and_wait(
                client, "task_chain", inputs, expected, args.timeout
            )
            result = {"elapsed_s": elapsed, "scheduling_s": scheduling}
    result["peak_mib"] = peak_rss_mib()
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
