"""Workflows with timed activity calls, the same code under treadle before and after the
timeout moved into the store (schema 9): instances started by the old code (which recorded
each timeout as a timer) finish under the new one. ``legacy_timeouts_old.py`` runs them on
the old code; ``test_legacy_timeouts.py`` finishes them on this one.

The activities block on files in ``TREADLE_LEGACY_DIR``: ``gate`` until the file ``open``
exists, ``hang`` until told to stop (its timeout), ``flaky`` hangs on its first attempt and
waits at the gate on the next ones.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import treadle as wf

WAITING_TIMEOUT = timedelta(seconds=8)  # the old code stops before, the new one sees it fire
RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)


def _dir() -> Path:
    return Path(os.environ["TREADLE_LEGACY_DIR"])


def _wait(ctx: wf.WorkflowActivityContext, until_open: bool) -> bool:
    """Wait (at most 60 s) until the gate opens (or, if not ``until_open``, until told to
    stop); whether it did."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ctx.is_cancelled:
            return not until_open
        if until_open and (_dir() / "open").exists():
            return True
        time.sleep(0.02)
    return False


def gate(ctx: wf.WorkflowActivityContext, name: str) -> str:
    """Return once the gate is open."""
    return f"done:{name}" if _wait(ctx, True) else "gate never opened"


def hang(ctx: wf.WorkflowActivityContext, name: str) -> str:
    """Run until told to stop (its result is dropped then)."""
    _wait(ctx, False)
    return f"late:{name}"


def flaky(ctx: wf.WorkflowActivityContext, name: str) -> str:
    """Hang on the first attempt, wait at the gate on the next ones."""
    count = _dir() / f"{name}.attempts"
    attempt = int(count.read_text()) + 1 if count.exists() else 1
    count.write_text(str(attempt))
    if attempt == 1:
        _wait(ctx, False)
        return "late"
    return f"done:{name}" if _wait(ctx, True) else "gate never opened"


def quick(ctx: wf.WorkflowActivityContext, value: Any) -> str:
    """Return at once."""
    return f"quick:{value}"


def single(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    """One timed call, then a timed call and a timer (made after the upgrade)."""
    first = yield ctx.call_activity(gate, input="single", timeout=timedelta(minutes=2))
    second = yield ctx.call_activity(quick, input=first, timeout=timedelta(seconds=30))
    yield ctx.create_timer(timedelta(milliseconds=50))
    return [first, second]


def fanout(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    """Three timed calls at once, then one more."""
    calls = [ctx.call_activity(gate, input=f"f{i}", timeout=timedelta(minutes=2)) for i in range(3)]
    results = yield wf.when_all(calls)
    after = yield ctx.call_activity(quick, input="after", timeout=timedelta(seconds=30))
    return [*results, after]


def retried(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    """A timed call retried: the first attempt runs past its timeout."""
    result = yield ctx.call_activity(
        flaky, input="retried", timeout=timedelta(seconds=1), retry_policy=RETRY
    )
    return result


def fired(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    """A timeout that fires, then a timed call."""
    try:
        first = yield ctx.call_activity(hang, input="fired", timeout=timedelta(seconds=1))
    except wf.TaskTimeoutError:
        first = "timed out"
    second = yield ctx.call_activity(gate, input="fired", timeout=timedelta(minutes=2))
    return [first, second]


def waiting(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    """A timeout that fires after the upgrade, then one kept by the store (after it)."""
    try:
        first = yield ctx.call_activity(hang, input="waiting", timeout=WAITING_TIMEOUT)
    except wf.TaskTimeoutError:
        first = "timed out"
    try:
        second = yield ctx.call_activity(hang, input="again", timeout=timedelta(seconds=1))
    except wf.TaskTimeoutError:
        second = "timed out again"
    return [first, second]


WORKFLOWS = [single, fanout, retried, fired, waiting]
ACTIVITIES = [gate, hang, flaky, quick]
EXPECTED = {
    "single": ["done:single", "quick:done:single"],
    "fanout": ["done:f0", "done:f1", "done:f2", "quick:after"],
    "retried": "done:retried",
    "fired": ["timed out", "done:fired"],
    "waiting": ["timed out", "timed out again"],
}


def register(runtime: wf.WorkflowRuntime) -> None:
    """Register the workflows and activities."""
    for workflow in WORKFLOWS:
        runtime.register_workflow(workflow)
    for activity in ACTIVITIES:
        runtime.register_activity(activity)
