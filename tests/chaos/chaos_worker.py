"""One worker process of the PostgreSQL chaos test: ``python chaos_worker.py URL LOG LEASE_S``.

It runs a WorkflowRuntime with the seed's two shapes (a 3-step task chain and a fan-out/fan-in)
until its stdin closes (or it is killed). Every activity appends lines to LOG, one
``O_APPEND`` write each, so a line is whole or absent after SIGKILL and lines of concurrent
processes never interleave:

- ``START <task_execution_id> <instance_id> <task_id> <pid>`` when it begins;
- ``VIOLATION ...`` (same fields) if the instance's history already holds its TaskCompleted:
  running again after the result was recorded is a bug (activities are at-least-once only
  until their result is recorded). The check reads history through a WorkflowClient of its
  own, right after the runtime started the activity (holding its lease);
- ``STALE ...`` instead, if that read itself took over a second (the process was paused in
  between, or PostgreSQL was restarting): another worker may have taken the activity over
  and recorded its result meanwhile, so the finding proves nothing.

The runtime's own notices that it was fenced out (a turn commit refused, a lease found lost,
an activity not started because its lease ran out) are appended as ``FENCED <pid> <message>``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import treadle as wf
from treadle.errors import StoreError, StoreUnavailableError
from treadle.store.postgres import PostgresStore

WORK_S = 0.05  # each activity's "work": long enough for kills to catch some in flight
CHECK_RETRY_S = 60.0  # how long the history check keeps trying while PostgreSQL restarts
CHECK_LATE_S = 1.0  # a history check slower than this is inconclusive (see STALE)


def chain_result(x: int) -> list[int]:
    """What ``task_chain`` returns for ``x``."""
    return [x + 1, (x + 1) * 2, ((x + 1) * 2) ^ 2]


def fan_result(n: int) -> int:
    """What ``batch_processing`` returns for ``n`` items."""
    return n * (n + 1)


class Activities:
    """The activities, each logging its execution and checking it is not a redo."""

    def __init__(self, checker: wf.WorkflowClient, log_fd: int) -> None:
        self._checker = checker
        self._fd = log_fd
        self._pid = os.getpid()

    def _log(self, kind: str, ctx: wf.WorkflowActivityContext) -> None:
        line = f"{kind} {ctx.task_execution_id} {ctx.workflow_id} {ctx.task_id} {self._pid}\n"
        os.write(self._fd, line.encode())

    def _history(self, instance_id: str) -> list[Any]:
        deadline = time.monotonic() + CHECK_RETRY_S
        while True:
            try:
                return self._checker.get_workflow_history(instance_id)
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _guard(self, ctx: wf.WorkflowActivityContext) -> None:
        self._log("START", ctx)
        began = time.monotonic()
        history = self._history(ctx.workflow_id)
        late = time.monotonic() - began > CHECK_LATE_S
        for event in history:
            if event.KIND == "TaskCompleted" and event.task_scheduled_id == ctx.task_id:
                self._log("STALE" if late else "VIOLATION", ctx)
        time.sleep(WORK_S)

    def step1(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        self._guard(ctx)
        return x + 1

    def step2(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        self._guard(ctx)
        return x * 2

    def step3(self, ctx: wf.WorkflowActivityContext, x: int) -> int:
        self._guard(ctx)
        return x ^ 2

    def get_work_batch(self, ctx: wf.WorkflowActivityContext, n: int) -> list[int]:
        self._guard(ctx)
        return [i + 1 for i in range(n)]

    def process_work_item(self, ctx: wf.WorkflowActivityContext, item: int) -> int:
        self._guard(ctx)
        return item * 2

    def process_results(self, ctx: wf.WorkflowActivityContext, total: int) -> int:
        self._guard(ctx)
        return total


def task_chain(ctx: wf.WorkflowContext, x: int) -> Any:
    """The seed's task chain: three activities in succession."""
    r1 = yield ctx.call_activity("step1", input=x)
    r2 = yield ctx.call_activity("step2", input=r1)
    r3 = yield ctx.call_activity("step3", input=r2)
    return [r1, r2, r3]


def batch_processing(ctx: wf.WorkflowContext, n: int) -> Any:
    """The seed's fan-out/fan-in: one batch activity, n parallel ones, one aggregate."""
    batch = yield ctx.call_activity("get_work_batch", input=n)
    outputs = yield wf.when_all([ctx.call_activity("process_work_item", input=i) for i in batch])
    total = yield ctx.call_activity("process_results", input=sum(outputs))
    return total


def _open_store(url: str, max_size: int) -> PostgresStore:
    """Open the store, waiting for PostgreSQL if it is restarting (as a supervisor would)."""
    deadline = time.monotonic() + CHECK_RETRY_S
    while True:
        try:
            return PostgresStore(url, max_size=max_size)
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class _FencedLog(logging.Handler):
    """Appends the runtime's notices of being fenced out to the shared log."""

    def __init__(self, log_fd: int) -> None:
        super().__init__(logging.DEBUG)
        self._fd = log_fd

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(words in message for words in ("refused", "lost the lease", "lease ran out")):
            os.write(self._fd, f"FENCED {os.getpid()} {message}\n".encode())


def main() -> None:
    url, log_path, lease_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    logging.basicConfig(format=f"%(asctime)s {os.getpid()} %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the DEBUG below is for _FencedLog only
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    runtime_logger = logging.getLogger("treadle.runtime")
    runtime_logger.setLevel(logging.DEBUG)
    runtime_logger.addHandler(_FencedLog(fd))
    checker = wf.WorkflowClient(_open_store(url, max_size=4))
    store = _open_store(url, max_size=10)
    activities = Activities(checker, fd)
    runtime = wf.WorkflowRuntime(store, lease_s=lease_s, max_concurrent_activities=8)
    runtime.register_workflow(task_chain)
    runtime.register_workflow(batch_processing)
    for name in (
        "step1",
        "step2",
        "step3",
        "get_work_batch",
        "process_work_item",
        "process_results",
    ):
        runtime.register_activity(getattr(activities, name), name=name)
    with runtime:
        print("READY", flush=True)
        sys.stdin.read()  # run until killed, or until the test closes our stdin
    store.close()
    checker.close()
    os.close(fd)


if __name__ == "__main__":
    main()
