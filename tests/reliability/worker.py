"""A worker process of the reliability suite: ``python worker.py STORE LEDGER [options]``.

It runs a WorkflowRuntime over STORE with the suite's workloads until its stdin closes (a clean
shutdown) or it is killed, and writes every activity execution to the witness ledger (see
:mod:`reliability.ledger`). Options:

- ``--lease S``: the runtime's lease (default 3 s);
- ``--skew S``: the runtime's (and the SQLite store's) clock runs S seconds ahead (or behind);
- ``--faults MODE:P``: install the stores' fault hook (see :mod:`reliability.faults`);
- ``--no-check``: skip the history read at each activity's start (no redo check);
- ``--lean``: witness only each execution's return (the soak);
- ``--work S``: each activity's "work" (default 0.02 s);
- ``--turn-timeout S``: the runtime's ``turn_timeout``;
- ``--redo-margin S``: see :meth:`reliability.ledger.Ledger.witness_start`.

Its runtime's notices of being fenced out (a turn refused, a lease found lost, an activity not
started because its lease ran out) are appended to ``LEDGER.fenced``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from datetime import timedelta
from typing import Any

import treadle as wf
from treadle.clock import SystemClock
from treadle.core.history import HistoryEvent
from treadle.errors import StoreError, StoreUnavailableError
from treadle.store import Store

if __package__ in (None, ""):  # run as a script: make ``reliability`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reliability import workloads
from reliability.ledger import Ledger

RETRY_S = 60.0  # how long the worker waits for its store (PostgreSQL restarting)


class SkewedClock(SystemClock):
    """The real clock, ``skew`` seconds off: wall time and deadlines alike."""

    __slots__ = ("skew",)

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        """The skewed wall time."""
        return time.time() + self.skew

    def monotonic(self) -> float:
        """The skewed monotonic time."""
        return time.monotonic() + self.skew

    def __call__(self) -> float:
        """The skewed wall time (as a store's ``clock``)."""
        return time.time() + self.skew


def open_store(url: str, clock: SkewedClock | None, max_size: int) -> Store:
    """Open the store, waiting for PostgreSQL if it is restarting (as a supervisor would)."""
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            if url.startswith("postgres"):
                from treadle.store.postgres import PostgresStore

                return PostgresStore(url, max_size=max_size)
            from treadle.store.sqlite import SqliteStore

            return SqliteStore(url, clock=clock)
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Activities:
    """The activities: each witnesses its start and its return in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        checker: wf.WorkflowClient | None,
        work_s: float,
        lean: bool,
        redo_margin_s: float = 0.5,
    ) -> None:
        self._ledger = ledger
        self._margin_s = redo_margin_s
        self._lean = lean
        self._checker = checker
        self._work_s = work_s

    def _history(self, instance_id: str) -> list[HistoryEvent]:
        assert self._checker is not None
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                return self._checker.get_workflow_history(instance_id)
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _run(self, ctx: wf.WorkflowActivityContext, value: Any) -> Any:
        if not self._lean:
            self._ledger.witness_start(
                ctx, self._history if self._checker is not None else None, self._margin_s
            )
        if self._work_s:
            time.sleep(self._work_s)
        self._ledger.witness_return(ctx)
        return value

    def inc(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        """x + 1."""
        return int(self._run(ctx, x + 1))

    def double(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        """2x."""
        return int(self._run(ctx, 2 * x))

    def suicide(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        """Kills the process running it, every time (poison work)."""
        self._ledger.witness_start(ctx, None)
        os.kill(os.getpid(), signal.SIGKILL)
        return x


class _FencedLog(logging.Handler):
    """Appends the runtime's notices of being fenced out to a file."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.DEBUG)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(words in message for words in ("refused", "lost the lease", "lease ran out")):
            os.write(self._fd, f"FENCED {os.getpid()} {message}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("ledger")
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--faults", default="")
    parser.add_argument("--no-check", action="store_true")
    parser.add_argument("--lean", action="store_true")
    parser.add_argument("--work", type=float, default=0.02)
    parser.add_argument("--activities", type=int, default=8)
    parser.add_argument("--turn-timeout", type=float, default=None)
    parser.add_argument("--redo-margin", type=float, default=0.5)
    args = parser.parse_args()

    logging.basicConfig(format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the DEBUG below is for _FencedLog only
    runtime_logger = logging.getLogger("treadle.runtime")
    runtime_logger.setLevel(logging.DEBUG)
    runtime_logger.addHandler(_FencedLog(args.ledger + ".fenced"))

    clock = SkewedClock(args.skew) if args.skew else None
    ledger = Ledger(args.ledger)
    checker = (
        None if args.no_check or args.lean else wf.WorkflowClient(open_store(args.store, None, 2))
    )
    store = open_store(args.store, clock, 10)
    activities = Activities(ledger, checker, args.work, args.lean, args.redo_margin)
    options: dict[str, Any] = {}
    if args.turn_timeout is not None:
        options["turn_timeout"] = timedelta(seconds=args.turn_timeout)
    runtime = wf.WorkflowRuntime(
        store,
        lease_s=args.lease,
        max_concurrent_activities=args.activities,
        clock=clock,
        **options,
    )
    for workflow in workloads.WORKFLOWS:
        runtime.register_workflow(workflow)
    runtime.register_activity(activities.inc, name="inc")
    runtime.register_activity(activities.double, name="double")
    runtime.register_activity(activities.suicide, name="suicide")
    with runtime:
        if args.faults:  # once started: a store failing at start-up stops the process
            from reliability import faults

            backend = "postgres" if args.store.startswith("postgres") else "sqlite"
            faults.install(args.faults, backend)
        print("READY", flush=True)
        sys.stdin.read()  # run until killed, or until the test closes our stdin
    store.close()
    if checker is not None:
        checker.close()


if __name__ == "__main__":
    main()
