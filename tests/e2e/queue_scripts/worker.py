"""A worker process for the queue tests: ``python worker.py STORE_URL LOG MODE``.

Its activity ``work`` is on a queue (MODE ``concurrency``: at most 3 at once; ``rate``: at
most 10 starts a second), or the workflow ``one`` that calls it is (``workflows``: at most 2
instances at once); ``work`` appends ``start``/``end`` lines with the time to LOG, so the test
measures what the activities saw. In ``rate`` mode each task the store's queue claim hands out
is logged too (``claim BEFORE AFTER``: the time just before and just after the claim, between
which the store stamped it), since the limit is on the claims: an activity starts later than
its claim, by more on a busy machine. Runs until its stdin closes.
"""

import os
import sys
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import treadle as wf

url, log, mode = sys.argv[1], sys.argv[2], sys.argv[3]


def _write(line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _note(kind: str, n: int) -> None:
    _write(f"{kind} {time.time():.6f} {n} {os.getpid()}\n")


def work(ctx: wf.WorkflowActivityContext, n: int) -> int:
    _note("start", n)
    time.sleep(0.0 if mode == "rate" else 0.1)
    _note("end", n)
    return n


def one(ctx: wf.WorkflowContext, n: int) -> Generator[Any, Any, int]:
    result: int = yield ctx.call_activity(work, input=n)
    return result


def fan_out(ctx: wf.WorkflowContext, count: int) -> Generator[Any, Any, int]:
    results = yield wf.when_all([ctx.call_activity(work, input=n) for n in range(count)])
    return sum(results)


runtime = wf.WorkflowRuntime(url, max_concurrent_activities=8)
runtime.register_workflow(fan_out)
if mode == "workflows":  # at most 2 instances of `one` running at once
    runtime.register_workflow(one, concurrency=2)
    runtime.register_activity(work)
elif mode == "concurrency":
    runtime.register_activity(work, concurrency=3)
else:
    runtime.register_activity(
        work, queue=wf.Queue("api", rate_limit=10, period=timedelta(seconds=1))
    )
if mode == "rate":  # log each claim of the queue's tasks, as the store makes it
    store: Any = runtime.store
    claim_queued = store.claim_queued

    def _claim_queued(*args: Any, **kwargs: Any) -> Any:
        before = time.time()
        claim = claim_queued(*args, **kwargs)
        after = time.time()
        _write("".join(f"claim {before:.6f} {after:.6f} {os.getpid()}\n" for _ in claim.items))
        return claim

    store.claim_queued = _claim_queued
with runtime:
    print("ready", flush=True)
    sys.stdin.read()
