"""A runtime whose commit is refused or fails loses no activity result and records none twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import treadle as wf
from treadle.core.history import TaskCompleted
from treadle.core.replay import replay
from treadle.errors import StoreUnavailableError
from treadle.store.base import ActivityResult, ActivityWorkItem, CommitOutcome, TurnCommit
from treadle.store.sqlite import SqliteStore

from .helpers import Gate, Workflow, decoded, events_of, finish, wait_until


def _one_step(ctx: wf.WorkflowContext, x: int) -> Workflow[int]:
    result: int = yield ctx.call_activity("step", input=x)
    return result


def _two_steps(ctx: wf.WorkflowContext, x: int) -> Workflow[int]:
    results: list[int] = yield wf.when_all(
        [ctx.call_activity("step", input=x), ctx.call_activity("step", input=x + 1)]
    )
    return sum(results)


def test_a_refused_turn_delivers_its_activity_result_through_the_inbox(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    gates: Callable[[], Gate],
) -> None:
    # The runtime holds the instance while its activities (task rows, leased to it) run;
    # meanwhile it loses the instance's lease. The turn carrying the results is refused; the
    # results must still arrive, at once, rather than be dropped and the activities run again
    # when their leases (30 s) run out.
    gate = gates()
    runs: list[int] = []
    runtime = make_runtime(start=False)

    def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
        runs.append(x)
        gate.hold()
        return x * 10

    runtime.register_activity(step)
    runtime.register_workflow(_two_steps, name="two_steps")
    runtime.start()
    iid = client.schedule_new_workflow("two_steps", input=4)
    wait_until(lambda: len(runs) == 2, what="both activities to start")
    wait_until(lambda: client.store.lease_owners() == [runtime.owner], what="the leases")
    client.store.release_leases(runtime.owner, [iid])  # as if its lease had been taken
    gate.open()

    state = finish(client, iid, timeout=10)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == 90
    assert sorted(runs) == [4, 5]
    assert len(events_of(client, iid, "TaskCompleted")) == 2


def test_an_own_task_goes_with_its_instance_lease_and_is_recorded_once(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    gates: Callable[[], Gate],
) -> None:
    # A chain's next step is the instance's own task, held under the instance's lease. When
    # that lease passes to another holder (here: is let go), the task is queued for any
    # worker and runs again; the first run's result is dropped, not recorded twice.
    gate = gates()
    runs: list[int] = []
    runtime = make_runtime(start=False)

    def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
        runs.append(x)
        if len(runs) == 1:
            gate.hold()
        return x * 10

    runtime.register_activity(step)
    runtime.register_workflow(_one_step, name="one_step")
    runtime.start()
    iid = client.schedule_new_workflow("one_step", input=4)
    gate.wait_entered()
    store = client.store
    assert isinstance(store, SqliteStore)
    with store._db.write() as conn:  # the step is kept in the instance's row
        row = conn.execute("SELECT own_task FROM instances WHERE instance_id = ?", (iid,))
        assert json.loads(row.fetchone()[0])["name"] == "step"
    client.store.release_leases(runtime.owner, [iid])  # as if its lease had been taken
    state = finish(client, iid, timeout=10)
    gate.open()
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == 40
    assert runs == [4, 4]  # at least once: the queued task ran while the first still waited
    assert len(events_of(client, iid, "TaskCompleted")) == 1


class _CommitFailsOnce(SqliteStore):
    """A store that goes away (once) at the first commit carrying an activity result."""

    failed = False

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        if not self.failed and any(t.consumed_activities for t in turns):
            self.failed = True
            raise StoreUnavailableError("injected: the store went away during the commit")
        return super().commit_turns(owner, turns, lease_s)


def _pair(ctx: wf.WorkflowContext, _: object) -> Workflow[list[int]]:
    results: list[int] = yield wf.when_all(
        [ctx.call_activity("fast", input=1), ctx.call_activity("slow", input=2)]
    )
    return results


def test_a_failed_commit_leaves_nothing_in_memory_that_history_lacks(
    store_url: str, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    # The commit of "fast"'s result fails. The runtime must not go on from a workflow state
    # that took that result in: its next turn would complete the workflow with a history
    # that lacks the result (and cannot be replayed to the same end).
    gate = gates()
    store = _CommitFailsOnce(store_url)
    runtime = wf.WorkflowRuntime(store, lease_s=1)  # the lost result's task is re-run soon
    runtime.register_activity(lambda ctx, x: x * 10, name="fast")

    def slow(ctx: wf.WorkflowActivityContext, x: int) -> int:
        gate.hold()
        return x * 10

    runtime.register_activity(slow)
    runtime.register_workflow(_pair, name="pair")
    try:
        runtime.start()
        iid = client.schedule_new_workflow("pair")
        gate.wait_entered()
        wait_until(lambda: store.failed, what="the failed commit")
        gate.open()
        state = finish(client, iid, timeout=15)
    finally:
        runtime.shutdown(timeout=2)
        store.close()

    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == [10, 20]
    history = client.get_workflow_history(iid)
    scheduled = sorted(e.event_id for e in history if e.KIND == "TaskScheduled")
    completed = sorted(e.task_scheduled_id for e in history if isinstance(e, TaskCompleted))
    assert completed == scheduled
    assert replay(_pair, history).output == state.serialized_output


PAUSED_WORKER = textwrap.dedent(
    """
    import sys
    import time

    import treadle as wf

    STORE, MARKS = sys.argv[1], sys.argv[2]
    runtime = wf.WorkflowRuntime(STORE, lease_s=1, max_concurrent_activities=1)


    def mark(text):
        with open(MARKS, "a") as f:
            f.write(text + "\\n")


    @runtime.activity
    def first(ctx):
        mark("first")
        time.sleep(0.5)  # the test pauses this process in here
        return 1


    @runtime.activity
    def second(ctx):
        mark("second")  # waits for the one activity thread, behind "first"
        return 2


    @runtime.workflow
    def both(ctx):
        return (yield wf.when_all([ctx.call_activity(first), ctx.call_activity(second)]))


    with runtime:
        sys.stdin.read()
    """
)


def _pause_outside_a_write(pid: int, database: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write transaction on ``database``.

    A process stopped inside a write holds SQLite's write lock, and every other process
    waits for it (the hazard of pausing a SQLite writer, not what the test is about): its
    heartbeats, renewals and commits write a few times a second, so a pause can land there.
    """
    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        probe = sqlite3.connect(database, timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the worker held the write lock at each of 100 pauses")


def test_a_process_paused_past_its_lease_does_not_start_what_others_took_over(
    tmp_path: Path,
    store_url: str,
    client: wf.WorkflowClient,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    script = tmp_path / "paused_worker.py"
    script.write_text(PAUSED_WORKER)
    marks = tmp_path / "marks.txt"
    iid = client.schedule_new_workflow("both")
    proc = spawn(script, store_url, str(marks))
    wait_until(lambda: marks.exists() and "first" in marks.read_text(), timeout=20)
    _pause_outside_a_write(proc.pid, tmp_path / "treadle.db")
    try:
        # Another worker takes the waiting "second" over once its lease ran out, runs it
        # and delivers its result; it gives "first" back.
        taken: list[ActivityWorkItem] = []

        def second_taken() -> list[ActivityWorkItem]:
            taken.extend(client.store.claim_activities("other", 10, 30))
            return [t for t in taken if t.name == "second"]

        (second,) = wait_until(second_taken, timeout=10)
        result = TaskCompleted(
            task_scheduled_id=second.task_id, result="2", task_execution_id=second.task_execution_id
        )
        client.store.complete_activities("other", [ActivityResult(second, result)])
        client.store.release_leases("other")
    finally:
        os.kill(proc.pid, signal.SIGCONT)

    state = finish(client, iid, timeout=20)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == [1, 2]
    assert "second" not in marks.read_text().split()  # the resumed process did not run it
    assert len(events_of(client, iid, "TaskCompleted")) == 2
