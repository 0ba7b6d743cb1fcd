"""What treadle's tracing code costs per step, apart from the rest of the runtime: record the
calls a real run makes to :class:`~treadle.runtime.tracing.Tracing`, then replay them.

    python -m bench.tracing_replay record W3 300 /tmp/w3.pkl     (or W1b 200: chains)
    valgrind --tool=callgrind python -m bench.tracing_replay play /tmp/w3.pkl 0
    valgrind --tool=callgrind python -m bench.tracing_replay play /tmp/w3.pkl 4

``record`` runs the workload (runtime and client in one process, SQLite in a temporary
directory, metrics and every span on) and keeps, in order, each turn as it was before
:meth:`Tracing.stamp`, each :meth:`Tracing.committed` call and each activity attempt.
``play`` replays them once, then REPS times more, into a fresh ``Tracing`` whose spans go
through the SDK's batch processor to an exporter that drops them (``bench.app
.traced_provider``): the instructions of REPS replays, divided by REPS times the steps,
are the tracing calls' own cost per step, deterministic where a whole run is not (its idle
loops and group commits follow timing). Run it from a source tree to compare two versions.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
import tempfile
import time
from typing import Any

import treadle as wf
from bench.app import build_runtime, long_chain, task_chain, traced_provider
from treadle.core.history import EPOCH, TaskCompleted
from treadle.runtime import tracing
from treadle.store.base import TurnCommit

Call = tuple[Any, ...]


def record(workload: str, n: int) -> tuple[int, list[Call]]:
    """Run ``workload`` (W3: one chain of ``n`` steps; W1b: ``n`` three-step chains) and
    return its steps and the tracing calls it made."""
    calls: list[Call] = []
    cls: Any = tracing.Tracing
    stamp, committed, started = cls.stamp, cls.committed, cls.activity_started

    def stamp_recorded(self: Any, commit: TurnCommit) -> Any:
        calls.append(("stamp", dataclasses.replace(commit, new_events=list(commit.new_events))))
        return stamp(self, commit)

    def committed_recorded(self: Any, commits: Any, outcomes: Any) -> Any:
        commits = list(commits)
        calls.append(("committed", commits, dict(outcomes)))
        return committed(self, commits, outcomes)

    def started_recorded(self: Any, item: Any) -> Any:
        calls.append(("started", item))
        return started(self, item)

    cls.stamp, cls.committed, cls.activity_started = (
        stamp_recorded,
        committed_recorded,
        started_recorded,
    )
    os.environ["TREADLE_BENCH_OBSERVABILITY"] = "1"
    try:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/replay.db"
            runtime = build_runtime(url)
            runtime.start()
            try:
                with wf.WorkflowClient(url) as client:
                    if workload == "W3":
                        ids = [client.schedule_new_workflow(long_chain, input=n)]
                    else:
                        ids = [client.schedule_new_workflow(task_chain, input=i) for i in range(n)]
                    for iid in ids:
                        client.wait_for_workflow_completion(iid, timeout_in_seconds=3600)
            finally:
                runtime.shutdown()
    finally:
        cls.stamp, cls.committed, cls.activity_started = stamp, committed, started
    return (n if workload == "W3" else 3 * n), calls


def replay(target: tracing.Tracing, calls: list[Call]) -> None:
    """Make ``calls`` to ``target``, each turn stamped from a copy of its event list (a
    first turn's is stamped in place)."""
    done = TaskCompleted(timestamp=EPOCH, task_scheduled_id=1)
    for call in calls:
        kind = call[0]
        if kind == "stamp":
            commit: TurnCommit = call[1]
            if commit.history_start == 0:
                commit = dataclasses.replace(commit, new_events=list(commit.new_events))
            target.stamp(commit)
        elif kind == "committed":
            target.committed(call[1], call[2])
        else:
            attempt = target.activity_started(call[1])
            if attempt is not None:
                attempt.finished(done)


def main(argv: list[str]) -> None:
    """``record WORKLOAD N FILE`` or ``play FILE REPS`` (see the module)."""
    if argv[0] == "record":
        steps, calls = record(argv[1], int(argv[2]))
        with open(argv[3], "wb") as out:
            pickle.dump((steps, calls), out)
        print(f"{len(calls)} calls over {steps} steps")
        return
    with open(argv[1], "rb") as source:
        steps, calls = pickle.load(source)
    reps = int(argv[2])
    target = tracing.Tracing(lambda iid: [], traced_provider())
    replay(target, calls)
    began = time.process_time()
    for _ in range(reps):
        replay(target, calls)
    flush = getattr(target.provider, "force_flush", None)
    if flush is not None:
        flush()
    if reps:
        took = (time.process_time() - began) / (reps * steps) * 1e6
        print(f"{reps} replays of {steps} steps: {took:.1f} us of CPU per step")


if __name__ == "__main__":
    main(sys.argv[1:])
