"""Starts from a client of the runtime's own process: the first turn is committed with the
instance (one durable commit), and everything a start through the store does still holds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.runtime import starts as local_starts_module
from treadle.store import local_starts as local
from treadle.store.base import CommitOutcome, InstanceRecord, TurnCommit
from treadle.store.sqlite import SqliteStore

from .helpers import Gate, Workflow, finish, kinds, status_of, wait_until, waiting_reason


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'treadle.db'}"


def _chain(ctx: wf.WorkflowContext, n: int) -> Workflow[list[int]]:
    first = yield ctx.call_activity("gated", input=n)
    second = yield ctx.call_activity("double", input=first)
    return [first, second]


def _parent(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
    child: int = yield ctx.call_child_workflow("child", input=n)
    return child + 1


def _child(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
    return (yield ctx.call_activity("double", input=n))


@pytest.fixture
def chain_runtime(
    make_runtime: Callable[..., wf.WorkflowRuntime], gates: Callable[[], Gate]
) -> tuple[wf.WorkflowRuntime, Gate]:
    gate = gates()
    runtime = make_runtime(start=False)
    runtime.register_workflow(_chain, name="chain")
    runtime.register_workflow(_parent, name="parent")
    runtime.register_workflow(_child, name="child")

    def gated(ctx: wf.WorkflowActivityContext, n: int) -> int:
        gate.hold()
        return n + 1

    runtime.register_activity(gated, name="gated")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    return runtime, gate


def test_the_first_turn_is_committed_with_the_start(
    chain_runtime: tuple[wf.WorkflowRuntime, Gate], client: wf.WorkflowClient
) -> None:
    runtime, gate = chain_runtime
    assert local.starters(client.store.url) == (runtime,)
    iid = client.schedule_new_workflow("chain", input=1)
    # when the start returns, its first turn is durable and its first activity is out
    assert kinds(client, iid) == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"]
    assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
    gate.wait_entered()
    gate.open()
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "null") == [2, 4]
    assert kinds(client, iid).count("TaskCompleted") == 2


def test_a_finished_instance_id_is_reused_and_a_running_one_refused(
    chain_runtime: tuple[wf.WorkflowRuntime, Gate], client: wf.WorkflowClient
) -> None:
    _, gate = chain_runtime
    gate.open()
    client.schedule_new_workflow("chain", input=1, instance_id="again")
    assert json.loads(finish(client, "again").serialized_output or "null") == [2, 4]
    client.schedule_new_workflow("chain", input=5, instance_id="again")
    state = finish(client, "again")
    assert json.loads(state.serialized_output or "null") == [6, 12]
    assert kinds(client, "again").count("ExecutionStarted") == 1  # a fresh history
    gate.opened.clear()
    client.schedule_new_workflow("chain", input=7, instance_id="busy")
    with pytest.raises(wf.WorkflowAlreadyExistsError, match="busy"):
        client.schedule_new_workflow("chain", input=8, instance_id="busy")
    gate.open()
    assert json.loads(finish(client, "busy").serialized_output or "null") == [8, 16]


def test_a_start_does_not_wait_for_the_round_under_way(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    gates: Callable[[], Gate],
) -> None:
    """While the dispatcher is inside a round (held here in a workflow's turn), a start from
    this process still commits its first turn with the instance and returns; the runtime
    runs its activity once the round is over."""
    gate = gates()
    runtime = make_runtime(start=False)

    def held(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        gate.hold()  # in the dispatcher's round, which holds the engine lock
        return n
        yield  # a generator all the same

    runtime.register_workflow(held, name="held")
    runtime.register_workflow(_child, name="child")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    # a start time makes it a start through the store, whose first turn the dispatcher runs
    first = client.schedule_new_workflow("held", input=1, start_at=datetime.now(timezone.utc))
    gate.wait_entered()
    iid = client.schedule_new_workflow("child", input=4)
    assert kinds(client, iid) == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"]
    assert not gate.opened.is_set()  # the round is still under way
    gate.open()
    assert finish(client, first).serialized_output == "1"
    assert finish(client, iid).serialized_output == "8"


class _RecordingSqliteStore(SqliteStore):
    """The SQLite store, recording its commits of turns: the committing thread, and the
    instance of each turn with whether the turn creates it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.commits: list[tuple[str, list[tuple[str, bool]]]] = []

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        turned = [(t.instance_id, t.create is not None) for t in turns]
        self.commits.append((threading.current_thread().name, turned))
        return super().commit_turns(owner, turns, lease_s)


def _held(ctx: wf.WorkflowContext, _: None) -> Workflow[None]:
    yield ctx.call_activity("hold")


def test_starts_in_a_loop_carry_the_engine_s_steps_in_their_commits(
    store_url: str,
    client: wf.WorkflowClient,
    gates: Callable[[], Gate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On SQLite a start from a client of this process commits the next turns of the
    workflows whose activity results wait for the dispatcher along with its instance: one
    commit a start, and none besides, however the threads are scheduled.

    Whether a result waits for the next start or the dispatcher's round takes it first is a
    race (the dispatcher leaves results to starts only while they come faster than they
    take, a moment at most); here the dispatcher stays parked while the test starts, an
    activity held out keeps the others' threads from committing their results themselves
    (they do so only when no other activity is out), and each start comes once every result
    but the held one waits. Then the commits are known exactly."""
    if not store_url.startswith("sqlite"):
        pytest.skip("PostgreSQL commits a start alone, beside the dispatcher's commits")
    parked, release = threading.Event(), threading.Event()
    waits_for_starts = local_starts_module.LocalStarts.await_starts

    def park(self: local_starts_module.LocalStarts) -> None:
        parked.set()
        release.wait(30)  # (bounded: a failing test still shuts down)
        waits_for_starts(self)

    monkeypatch.setattr(local_starts_module.LocalStarts, "await_starts", park)
    gate = gates()
    store = _RecordingSqliteStore(store_url)
    runtime = wf.WorkflowRuntime(store)
    runtime.register_workflow(_chain, name="chain")
    runtime.register_workflow(_held, name="held")
    runtime.register_activity(lambda ctx, _: gate.hold(), name="hold")
    runtime.register_activity(lambda ctx, n: n + 1, name="gated")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    n = 20
    try:
        with runtime:
            assert parked.wait(10), "the dispatcher never reached its wait for starts"
            engine = runtime._engine
            assert engine is not None
            inflight = engine.inflight

            def all_but_the_held_wait() -> bool:
                return inflight.results.qsize() == len(inflight) - 1

            held = client.schedule_new_workflow("held")
            gate.wait_entered()
            ids = []
            for i in range(n):
                ids.append(client.schedule_new_workflow("chain", input=i))
                wait_until(
                    all_but_the_held_wait,
                    what=f"the activity results after start {i} to wait",
                    state=lambda: (inflight.results.qsize(), len(inflight), store.commits[-1]),
                )
            while_starting = list(store.commits)
            release.set()
            gate.open()
            outputs = [json.loads(finish(client, iid).serialized_output or "null") for iid in ids]
            finish(client, held)
    finally:
        release.set()
        store.close()
    assert outputs == [[i + 1, 2 * (i + 1)] for i in range(n)]
    # one commit a start, on the client's thread, none from the dispatcher or an activity
    assert [thread for thread, _ in while_starting] == [threading.current_thread().name] * (n + 1)
    assert while_starting[0][1] == [(held, True)]
    for i, (_, turns) in enumerate(while_starting[1:]):
        # start i creates chain i and carries the steps of the two chains before it:
        # chain i-1's first result (its second activity scheduled), chain i-2's second
        # (it completes)
        carried = sorted(iid for iid, creates in turns if not creates)
        assert [iid for iid, creates in turns if creates] == [ids[i]], turns
        assert carried == sorted(ids[max(0, i - 2) : i]), (i, turns)


def test_starts_the_runtime_does_not_take_go_through_the_store(
    chain_runtime: tuple[wf.WorkflowRuntime, Gate], client: wf.WorkflowClient
) -> None:
    _, gate = chain_runtime
    gate.open()
    # a first turn that starts a child: created by the store, then run as usual
    parent = client.schedule_new_workflow("parent", input=3)
    assert finish(client, parent).serialized_output == "7"
    # a start for later waits in the store
    later = datetime.now(timezone.utc) + timedelta(seconds=0.5)
    iid = client.schedule_new_workflow("chain", input=1, start_at=later)
    assert status_of(client, iid) is wf.WorkflowStatus.PENDING
    assert kinds(client, iid) == []
    assert json.loads(finish(client, iid).serialized_output or "null") == [2, 4]
    # a workflow this runtime does not have: the store's start; it waits for a worker
    unknown = client.schedule_new_workflow("nowhere")
    assert "'nowhere'" in waiting_reason(client, unknown)
    assert status_of(client, unknown) is wf.WorkflowStatus.PENDING


def test_without_local_starts_or_once_stopped_the_store_starts_them(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    runtime = make_runtime(start=False, local_starts=False)
    runtime.register_workflow(_child, name="child")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    assert local.starters(client.store.url) == ()
    assert finish(client, client.schedule_new_workflow("child", input=4)).serialized_output == "8"
    other = make_runtime(start=False)
    other.register_workflow(_child, name="child")
    other.start()
    assert local.starters(client.store.url) == (other,)
    other.shutdown()
    assert local.starters(client.store.url) == ()


def _timer_first(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
    yield ctx.create_timer(timedelta(seconds=0.2))
    return n + 1


def _event_first(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
    go: int = yield ctx.wait_for_external_event("go")
    return n + go


def _again_first(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
    if n < 3:
        ctx.continue_as_new(n + 1)
        return -1
    return (yield ctx.call_activity("double", input=n))


def _fails_first(ctx: wf.WorkflowContext, n: int) -> Workflow[None]:
    raise ValueError(f"no good: {n}")
    yield  # a generator all the same


def test_first_turns_of_every_kind(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    """A first turn that sets a timer, waits for an event, continues as new (through the
    store) or fails: each instance ends as it would after a start through the store."""
    runtime = make_runtime(start=False)
    for fn in (_timer_first, _event_first, _again_first, _fails_first):
        runtime.register_workflow(fn)
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    timer = client.schedule_new_workflow(_timer_first, input=1)
    assert kinds(client, timer)[-1] == "TimerCreated"
    event = client.schedule_new_workflow(_event_first, input=1)
    assert status_of(client, event) is wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(event, "go", data=41)
    again = client.schedule_new_workflow(_again_first, input=0)
    fails = client.schedule_new_workflow(_fails_first, input=7)
    failed = client.get_workflow_state(fails)  # it failed within its start
    assert failed is not None and failed.runtime_status is wf.WorkflowStatus.FAILED
    assert failed.failure_details is not None and "no good: 7" in failed.failure_details.message
    assert finish(client, timer).serialized_output == "2"
    assert finish(client, event).serialized_output == "42"
    assert finish(client, again).serialized_output == "6"


def test_starts_from_many_threads_at_once(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    """Threads starting together: one start at a time is taken here, the others go through
    the store side by side; every instance runs once to its result."""
    runtime = make_runtime(start=False)
    runtime.register_workflow(_child, name="child")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    ids: dict[int, str] = {}

    def starter(base: int) -> None:
        for n in range(base, base + 10):
            ids[n] = client.schedule_new_workflow("child", input=n)

    threads = [threading.Thread(target=starter, args=(k * 10,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(ids) == list(range(60))
    for n, iid in ids.items():
        assert finish(client, iid).serialized_output == str(2 * n)
        assert kinds(client, iid).count("TaskCompleted") == 1


_KILLED = textwrap.dedent(
    """
    import sys, time
    import treadle as wf

    url, marker = sys.argv[1], sys.argv[2]
    runtime = wf.WorkflowRuntime(url)

    @runtime.workflow(name="chain")
    def chain(ctx, n):
        first = yield ctx.call_activity("gated", input=n)
        return (yield ctx.call_activity("double", input=first))

    @runtime.activity(name="gated")
    def gated(ctx, n):
        open(marker, "a").write("entered\\n")
        time.sleep(60)  # killed in here
        return n + 1

    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    with wf.WorkflowClient(url) as client:
        print(client.schedule_new_workflow("chain", input=1), flush=True)
    sys.stdin.read()
    """
)


def test_kill_9_after_a_local_start_loses_nothing(
    store_url: str,
    tmp_path: Path,
    spawn: Callable[..., subprocess.Popen[str]],
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
) -> None:
    """The started instance is durable and its first activity, held in the killed process,
    is taken over by the next runtime (on this host at once: its owner's process is gone)."""
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    marker = tmp_path / "marker"
    proc = spawn(script, store_url, str(marker), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    iid = proc.stdout.readline().strip()
    assert iid, "the child printed no instance id"
    wait_until(marker.exists, what="the first activity to start")
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    assert kinds(client, iid) == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"]
    runtime = make_runtime(start=False)
    runtime.register_workflow(_chain_two, name="chain")
    runtime.register_activity(lambda ctx, n: n + 1, name="gated")
    runtime.register_activity(lambda ctx, n: 2 * n, name="double")
    runtime.start()
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.serialized_output == "4"
    history = kinds(client, iid)
    assert history.count("ExecutionStarted") == 1 and history.count("TaskCompleted") == 2


def _chain_two(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
    first = yield ctx.call_activity("gated", input=n)
    return (yield ctx.call_activity("double", input=first))


def test_unnamed_memory_stores_are_never_matched() -> None:
    """Each opening of ``memory://`` is a database of its own: a client there must not hand
    its starts to a runtime that could not show them to it."""
    assert not local.shared("memory://") and not local.shared("sqlite:///:memory:")
    assert local.shared("memory://tests") and local.shared("sqlite:///x.db")
    runtime = wf.WorkflowRuntime("memory://")
    runtime.register_workflow(_child, name="child")
    with runtime:
        assert local.starters(runtime.store.url) == ()
    named = wf.WorkflowRuntime("memory://named-local")
    named.register_workflow(_child, name="child")
    named.register_activity(lambda ctx, n: 2 * n, name="double")
    with named, wf.WorkflowClient("memory://named-local") as client:
        assert local.starters(client.store.url) == (named,)
        assert (
            finish(client, client.schedule_new_workflow("child", input=5)).serialized_output == "10"
        )


def test_the_client_module_needs_no_runtime() -> None:
    """Importing the client alone starts no runtime machinery (the registry is empty)."""
    code = "import treadle.client, treadle.store.local_starts as l; print(l._BY_URL)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{}"


def test_a_client_of_the_runtime_s_process_gets_the_final_state_as_a_read_gives_it(
    chain_runtime: tuple[wf.WorkflowRuntime, Gate], client: wf.WorkflowClient, store_url: str
) -> None:
    """On PostgreSQL the commit that ends the workflow hands its row to the waiting client of
    the same process (no read after its last wake-up); either way the state is the stored one."""
    _, gate = chain_runtime
    reads: list[str] = []
    store = client.store
    read = store.get_instance

    def counted(instance_id: str) -> InstanceRecord | None:
        reads.append(instance_id)
        return read(instance_id)

    iid = client.schedule_new_workflow("chain", input=1)
    gate.wait_entered()
    store.get_instance = counted  # type: ignore[method-assign]  # counts the reads, undone below
    try:
        threading.Timer(0.2, gate.open).start()
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=10)
    finally:
        del store.get_instance
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state == client.get_workflow_state(iid)
    if store_url.startswith("postgresql"):
        assert reads == [iid]  # the first look, and no other
    else:
        assert len(reads) >= 2
