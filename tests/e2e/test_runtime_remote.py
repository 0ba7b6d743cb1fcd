"""A runtime with remote workers (as ``treadle serve`` has) and local functions side by side."""

from __future__ import annotations

import queue
from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import treadle as wf
from treadle.core import codec
from treadle.core.history import TaskCompleted
from treadle.runtime.remote import RemoteTurn
from treadle.store.base import ActivityWorkItem

from .helpers import finish


class _HeldWorkers:
    """Remote workers that keep each activity sent to them until the test reports it done
    (:meth:`report_next`, on the test's thread, as a server's stream thread reports):
    ``remote_double`` doubles its input."""

    def __init__(self) -> None:
        self.runtime: wf.WorkflowRuntime | None = None
        self.sent: queue.SimpleQueue[ActivityWorkItem] = queue.SimpleQueue()

    def submit_orchestration(self, turn: RemoteTurn) -> None:
        raise AssertionError(f"no remote workflow here, got a turn of {turn.name!r}")

    def submit_activity(self, item: ActivityWorkItem) -> None:
        self.sent.put(item)

    def has_workers(self) -> bool:
        return True

    def withdraw_orchestration(self, instance_id: str) -> bool:
        return False

    def report_next(self) -> None:
        item = self.sent.get(timeout=10)
        assert item.name == "remote_double" and self.runtime is not None
        event = TaskCompleted(
            timestamp=datetime.now(timezone.utc),
            task_scheduled_id=item.task_id,
            result=codec.encode(2 * codec.decode(item.input)),
            task_execution_id=item.task_execution_id,
        )
        self.runtime.complete_remote_activity(item, event)


def _remote_then_local(ctx: wf.WorkflowContext, x: int) -> Generator[wf.Task[Any], Any, int]:
    doubled = yield ctx.call_activity("remote_double", input=x)
    result: int = yield ctx.call_activity("local_add_one", input=doubled)
    return result


def test_a_local_step_scheduled_by_a_remote_result_runs(tmp_path: Path) -> None:
    """A remote result that nothing else waits with is committed on the reporting thread;
    the local step it schedules must then go to the activity threads (the reporting
    thread does not run activities)."""
    workers = _HeldWorkers()
    runtime = wf.WorkflowRuntime(f"sqlite:///{tmp_path / 'treadle.db'}", remote=workers)
    workers.runtime = runtime
    runtime.register_workflow(_remote_then_local, name="remote_then_local")
    runtime.register_activity(lambda ctx, x: x + 1, name="local_add_one")
    outputs = []
    runtime.start()
    try:
        with wf.WorkflowClient(runtime.store) as client:
            for x in range(10):
                iid = client.schedule_new_workflow("remote_then_local", input=x)
                workers.report_next()
                outputs.append(finish(client, iid, timeout=5).serialized_output)
    finally:
        runtime.shutdown(timeout=2)  # (a step left unrun would hold a longer one up)
    assert outputs == [str(2 * x + 1) for x in range(10)]
