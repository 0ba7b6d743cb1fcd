"""The instructions the runtime's metrics cost per step, for callgrind: one process runs a
runtime and a client on one store and does a W3 chain of ``--steps`` steps, or W1b's
``--chains`` task chains started at once, with metrics on or off.

    valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python -m bench.metrics_cost --url sqlite:///X.db --workload W3 --size 1300 --metrics on

Instruction counts do not depend on the machine's load: the cost of a step is the difference
of two sizes (e.g. 1300 and 300 steps) divided by the steps between them, which leaves out
the start-up; on minus off is what the metrics cost (see ``bench/results/metrics-overhead.txt``).
"""

from __future__ import annotations

import argparse
import os

import treadle as wf
from bench import app
from bench.observability import ENV
from bench.workloads import start_and_wait


def main(argv: list[str] | None = None) -> int:
    """Run the workload once and exit (0: it returned what it should)."""
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--url", required=True)
    parser.add_argument("--workload", choices=("W3", "W1b"), default="W3")
    parser.add_argument("--size", type=int, default=300, help="W3: steps; W1b: chains")
    parser.add_argument("--metrics", choices=("on", "off"), default="off")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    os.environ[ENV] = "1" if args.metrics == "on" else "0"
    with app.build_runtime(args.url), wf.WorkflowClient(args.url) as client:
        if args.workload == "W3":
            start_and_wait(client, "long_chain", [args.size], [args.size], args.timeout)
        else:
            inputs = range(args.size)
            expected = [app.task_chain_result(i) for i in inputs]
            start_and_wait(client, "task_chain", inputs, expected, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
