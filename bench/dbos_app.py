"""The benchmark's workloads on DBOS Transact, one workload per process.

``python -m bench.dbos_app --url URL --out FILE WORKLOAD [--size N]`` launches DBOS on the
system database ``URL`` (a SQLite file or a PostgreSQL database), runs the workload with
DBOS's idiomatic API (``@DBOS.workflow`` calling ``@DBOS.step`` functions; concurrency with
``DBOS.start_workflow`` and handles; fan-out with a queue and handles) and writes its timings
to ``FILE`` as JSON. DBOS's own defaults are used throughout (queue polling included).

Only this process imports ``dbos``: its decorators register with a global DBOS instance.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from dbos import DBOS, SetWorkflowID  # type: ignore[import-not-found, unused-ignore]

from bench.app import batch_processing_result, task_chain_result
from bench.procs import peak_rss_mib

FANOUT_QUEUE = "bench_fanout"
_log_fd: int | None = None

_F = TypeVar("_F", bound=Callable[..., Any])


def _step(fn: _F) -> _F:
    """``@DBOS.step()``, typed whether or not mypy sees DBOS's own annotations."""
    return cast(_F, DBOS.step()(fn))


def _workflow(fn: _F) -> _F:
    """``@DBOS.workflow()``, typed whether or not mypy sees DBOS's own annotations."""
    return cast(_F, DBOS.workflow()(fn))


@_step
def step1(x: int) -> int:
    """First link of the chain."""
    return x + 1


@_step
def step2(x: int) -> int:
    """Second link of the chain."""
    return x * 2


@_step
def step3(x: int) -> int:
    """Third link of the chain."""
    return x ^ 2


@_workflow
def task_chain(x: int) -> list[int]:
    """The seed's task chain."""
    r1 = step1(x)
    r2 = step2(r1)
    r3 = step3(r2)
    return [r1, r2, r3]


@_step
def get_work_batch(batch_size: int) -> list[int]:
    """The work items: 1..batch_size."""
    return [i + 1 for i in range(batch_size)]


@_step
def process_work_item(work_item: int) -> int:
    """One item's work (no sleep)."""
    return work_item * 2


@_step
def process_results(total: int) -> int:
    """The aggregation step."""
    return total


@_workflow
def batch_processing(n: int) -> int:
    """Fan-out/fan-in: the items are enqueued on a queue and their handles awaited."""
    queue = DBOS.retrieve_queue(FANOUT_QUEUE)
    assert queue is not None
    handles = [queue.enqueue(process_work_item, item) for item in get_work_batch(n)]
    return process_results(sum(h.get_result() for h in handles))


@_step
def increment(x: int) -> int:
    """One step of a long chain."""
    return x + 1


@_workflow
def long_chain(n: int) -> int:
    """``n`` sequential steps."""
    x = 0
    for _ in range(n):
        x = increment(x)
    return x


@_step
def logged_increment(x: int) -> int:
    """Like :func:`increment`, after logging ``<workflow id>:<step id>`` (W4)."""
    assert _log_fd is not None
    os.write(_log_fd, f"{DBOS.workflow_id}:{DBOS.step_id}\n".encode())
    return x + 1


@_workflow
def recovery_chain(n: int) -> int:
    """``n`` sequential logged steps (W4)."""
    x = 0
    for _ in range(n):
        x = logged_increment(x)
    return x


def launch(url: str) -> None:
    """Create and launch DBOS on the system database ``url``."""
    DBOS(config={"name": "treadle-bench", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    if hasattr(DBOS, "register_queue"):
        DBOS.register_queue(FANOUT_QUEUE)
    else:  # DBOS before queues were registered in the database
        from dbos import Queue

        Queue(FANOUT_QUEUE)


def run(workload: str, size: int, warmup: int, workflow_id: str | None) -> dict[str, Any]:
    """Run one workload on the launched DBOS; return its timings."""
    if workload == "W1a":
        latencies: list[float] = []
        for i in range(warmup + size):
            start = time.perf_counter()
            result = DBOS.start_workflow(task_chain, i).get_result()
            if i >= warmup:
                latencies.append((time.perf_counter() - start) * 1000)
        _expect(result, task_chain_result(i))
        return {"latencies_ms": latencies}
    start = time.perf_counter()
    if workload == "W1b":
        handles = [DBOS.start_workflow(task_chain, i) for i in range(size)]
        for i, handle in enumerate(handles):
            _expect(handle.get_result(), task_chain_result(i))
    elif workload == "W2":
        _expect(
            DBOS.start_workflow(batch_processing, size).get_result(), batch_processing_result(size)
        )
    elif workload == "W3":
        _expect(DBOS.start_workflow(long_chain, size).get_result(), size)
    elif workload == "W4-run":
        with SetWorkflowID(workflow_id or "w4"):
            running = DBOS.start_workflow(recovery_chain, size)
        running.get_result()  # the driver kills this process long before
    elif workload == "W4-recover":
        # DBOS.launch() already recovered the killed workflow; wait for it
        _expect(DBOS.retrieve_workflow(workflow_id or "w4").get_result(), size)
        return {"done_at": time.time()}
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return {"elapsed_s": time.perf_counter() - start}


def _expect(got: Any, want: Any) -> None:
    if got != want:
        raise RuntimeError(f"DBOS returned {got!r}, expected {want!r}")


def main(argv: list[str] | None = None) -> int:
    """Launch DBOS, run one workload, write its timings, shut DBOS down."""
    global _log_fd
    parser = argparse.ArgumentParser(prog="python -m bench.dbos_app")
    parser.add_argument("workload")
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--workflow-id")
    parser.add_argument("--execution-log")
    args = parser.parse_args(argv)
    if args.execution_log:
        _log_fd = os.open(args.execution_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    launch(args.url)
    launched_at = time.time()
    try:
        result = run(args.workload, args.size, args.warmup, args.workflow_id)
        result["launched_at"] = launched_at
        result["journal"] = _sqlite_journal(args.url)
        result["peak_mib"] = peak_rss_mib()
        args.out.write_text(json.dumps(result))
    finally:
        DBOS.destroy()
    return 0


def _sqlite_journal(url: str) -> str | None:
    """The journal mode of a SQLite system database (None on PostgreSQL)."""
    if not url.startswith("sqlite:///"):
        return None
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


if __name__ == "__main__":
    raise SystemExit(main())
