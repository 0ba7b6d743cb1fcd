"""``python -m bench.sqlite_statements [W1a|W3] [N]``: what each SQLite statement of a workload
costs, per workflow step, with its query plan.

Runs the workload in one process (W1a: N seed task chains one at a time; W3: one chain of N
steps) on a fresh SQLite file, with every connection a timing one (a ``sqlite3.Connection``
subclass passed as ``factory=``), and prints, for each distinct statement, how often it ran
and how long it took per step, then its query plan, marking with ``!!`` a full scan of the
instances or the history (what makes a statement dearer as finished workflows pile up). Run it
from two trees (``cd OTHER && python -m bench.sqlite_statements``) to compare them statement by
statement: this is how a claim that read every instance of the file was found.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

FULL_SCAN = re.compile(r"SCAN (instances|history|i|h)\b(?! USING (COVERING )?INDEX instances_held)")


class _Timed(sqlite3.Connection):
    """A connection that adds each statement's count and time to :attr:`stats`."""

    stats: ClassVar[dict[str, list[Any]]] = {}  # sql -> [count, seconds, first parameters]
    lock: ClassVar[threading.Lock] = threading.Lock()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        began = time.perf_counter()
        try:
            return super().execute(sql, parameters)
        finally:
            self._note(sql, parameters, time.perf_counter() - began)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        rows = list(parameters)
        began = time.perf_counter()
        try:
            return super().executemany(sql, rows)
        finally:
            self._note(sql, rows[0] if rows else (), time.perf_counter() - began)

    def _note(self, sql: str, parameters: Any, seconds: float) -> None:
        with self.lock:
            entry = self.stats.setdefault(sql, [0, 0.0, parameters])
            entry[0] += 1
            entry[1] += seconds


def main(argv: Sequence[str]) -> int:
    """Run the workload named by ``argv`` (see the module) and print the table."""
    workload = argv[0] if argv else "W3"
    n = int(argv[1]) if len(argv) > 1 else (1000 if workload == "W3" else 200)
    if workload not in ("W1a", "W3"):
        print("usage: python -m bench.sqlite_statements [W1a|W3] [N]", file=sys.stderr)
        return 2
    connect = sqlite3.connect

    def timed(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, **kwargs, factory=_Timed)

    sqlite3.connect = timed  # type: ignore[assignment]  # (before treadle opens anything)
    import treadle as wf
    from bench.app import build_runtime, long_chain, task_chain

    database = Path(tempfile.mkdtemp(prefix="treadle-statements-")) / "bench.db"
    url = f"sqlite:///{database}"
    with build_runtime(url), wf.WorkflowClient(url) as client:
        _run(client, workflow=task_chain, inputs=[0])  # (warm-up, not counted)
        _Timed.stats.clear()
        if workload == "W3":
            _run(client, workflow=long_chain, inputs=[n])
            steps = n
        else:
            _run(client, workflow=task_chain, inputs=list(range(n)))
            steps = 3 * n
    sqlite3.connect = connect
    plans = connect(database)
    print(f"# {workload}, {steps} steps: per step, each statement's runs and time (us)")
    for sql, (count, seconds, parameters) in sorted(
        _Timed.stats.items(), key=lambda item: -item[1][1]
    ):
        print(f"{count / steps:8.3f} {seconds / steps * 1e6:9.2f}  {' '.join(sql.split())[:150]}")
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
            plan = [row[3] for row in plans.execute("EXPLAIN QUERY PLAN " + sql, parameters)]
            mark = "!!" if any(FULL_SCAN.match(line) for line in plan) else "  "
            print(f"{mark}{'':17}plan: {' | '.join(plan)}")
    plans.close()
    return 0


def _run(client: Any, *, workflow: Any, inputs: list[int]) -> None:
    """Start ``workflow`` once per input, one at a time, each waited for."""
    for value in inputs:
        iid = client.schedule_new_workflow(workflow, input=value)
        client.wait_for_workflow_completion(iid, timeout_in_seconds=600)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
