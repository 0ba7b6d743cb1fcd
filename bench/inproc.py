"""W1a in one process: the runtime and the client side by side, as the seed's code runs them
(and as a DBOS application always runs). Run by the driver as ``python -m bench.inproc``.

Here a start is taken by the runtime of the same process (see :mod:`treadle.store.local_starts`):
its first turn is committed with the instance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import treadle as wf
from bench import app
from bench.procs import peak_rss_mib
from bench.workloads import time_task_chains


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
    with app.build_runtime(args.url), wf.WorkflowClient(args.url) as client:
        latencies = time_task_chains(client, args.size, args.warmup, args.timeout)
    args.out.write_text(json.dumps({"latencies_ms": latencies, "peak_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
