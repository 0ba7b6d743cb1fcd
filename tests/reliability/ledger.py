"""The reliability suite's witness ledger and its one checker.

Every activity of the suite's workers writes to the **ledger**, an SQLite file of its own
(WAL, ``synchronous=FULL``: a row is on disk before the activity goes on), two rows per
execution: ``start`` when it begins and ``return`` just before it returns. Each row carries
the instance, the task id, the attempt (how many executions of that task the ledger had
seen, plus one), the process id and the time (the machine's real clock, whatever clock the
runtime was given). A start row also says whether the task's completion was already in the
instance's history when it began (``redo``: 1 yes, 0 no, NULL when that read was too slow to
tell, -1 when not checked; see :meth:`Ledger.witness_start`).

After the faults stop and the system drains, :func:`check` compares the store with what the
test expects and with the ledger, and gives the figures every test prints as one JSON line
(:meth:`Figures.emit`): acknowledged starts, completed, **lost**, **stuck**, **duplicate
history commits**, **re-runs after a recorded completion**, duplicate rate, output
mismatches, recovery latency p50/p99. The bold ones must be 0 (:meth:`Figures.assert_sound`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import treadle as wf
from treadle.core.history import (
    EventRaised,
    ExecutionCompleted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from treadle.core.replay import replay

from .workloads import WORKFLOWS

ENDED = frozenset(
    {
        wf.WorkflowStatus.COMPLETED,
        wf.WorkflowStatus.FAILED,
        wf.WorkflowStatus.TERMINATED,
        wf.WorkflowStatus.STALLED,
    }
)
"""States an instance does not leave by itself (any other is stuck once the system drained)."""
RESULTS_ENV = "TREADLE_RELIABILITY_RESULTS"  # a file every JSON line is appended to, if set
LATE_CHECK_S = 1.0  # a history read slower than this cannot tell a redo from a race
EMITTED: list[str] = []  # the lines printed in this process (the terminal summary shows them)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witness (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- 'start' or 'return'
    instance TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    execution TEXT NOT NULL,       -- task_execution_id
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    t REAL NOT NULL,
    redo INTEGER                   -- start rows: completion already in history (NULL: unknown,
                                   -- -1: not checked)
)
"""


class Ledger:
    """One process's handle on the witness ledger (thread-safe: a connection per thread)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        conn = self._connect()
        conn.execute(_SCHEMA)
        conn.execute("CREATE INDEX IF NOT EXISTS witness_task ON witness (instance, task_id)")

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def _append(
        self, kind: str, ctx: wf.WorkflowActivityContext, t: float, redo: int | None
    ) -> int:
        """Append a row, retrying for a while if the file is locked (another worker may be
        paused inside a write of its own)."""
        deadline = time.monotonic() + 120.0
        while True:
            try:
                return self._append_once(kind, ctx, t, redo)
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _append_once(
        self, kind: str, ctx: wf.WorkflowActivityContext, t: float, redo: int | None
    ) -> int:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            (seen,) = conn.execute(
                "SELECT count(*) FROM witness WHERE kind = 'start' AND instance = ? "
                "AND task_id = ?",
                (ctx.workflow_id, ctx.task_id),
            ).fetchone()
            attempt = int(seen) + (1 if kind == "start" else 0)
            conn.execute(
                "INSERT INTO witness (kind, instance, task_id, execution, attempt, pid, t, redo) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    ctx.workflow_id,
                    ctx.task_id,
                    ctx.task_execution_id,
                    attempt,
                    os.getpid(),
                    t,
                    redo,
                ),
            )
            conn.execute("COMMIT")
            return attempt
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def witness_start(
        self,
        ctx: wf.WorkflowActivityContext,
        history: Callable[[str], list[HistoryEvent]] | None,
        margin_s: float = 0.5,
    ) -> int:
        """Record that an execution began; return its attempt number.

        With ``history`` (a reader of the instance's history through a client of the
        worker's own), first look whether the task's completion is recorded already: the
        activity runs under its lease, which no one else can complete it under, so a
        completion seen then was recorded before it began (a re-run after a recorded
        completion), unless the read itself took longer than :data:`LATE_CHECK_S` (the
        process may have been paused, and lost its lease meanwhile), or the completion is
        stamped later than ``margin_s`` before this execution began (a pause may have come
        between the start and the read; ``margin_s`` covers the skew of the workers'
        clocks, which stamp completions).
        """
        began = time.time()
        redo: int | None = -1  # not checked
        if history is not None:
            events = history(ctx.workflow_id)
            done = [
                e
                for e in events
                if isinstance(e, TaskCompleted) and e.task_scheduled_id == ctx.task_id
            ]
            if time.time() - began > LATE_CHECK_S:
                redo = None
            elif not done:
                redo = 0
            else:
                # The process may have been paused between the start of the activity and
                # this look (a fencing test does that): only a completion stamped well
                # before this execution began proves a redo.
                stamped = done[0].timestamp.timestamp()
                redo = 1 if stamped < began - margin_s else None
        return self._append("start", ctx, began, redo)

    def witness_return(self, ctx: wf.WorkflowActivityContext) -> None:
        """Record that an execution is about to return its result."""
        self._append("return", ctx, time.time(), None)

    def rows(self) -> list[tuple[Any, ...]]:
        """Every row, in the order written: (kind, instance, task_id, execution, attempt,
        pid, t, redo)."""
        return (
            self._connect()
            .execute(
                "SELECT kind, instance, task_id, execution, attempt, pid, t, redo "
                "FROM witness ORDER BY seq"
            )
            .fetchall()
        )

    def returns(self) -> int:
        """Executions that returned so far (for waiting on progress)."""
        conn = self._connect()
        (n,) = conn.execute("SELECT count(*) FROM witness WHERE kind = 'return'").fetchone()
        return int(n)


def emit_line(text: str) -> None:
    """Print one figures line (and append it to ``$TREADLE_RELIABILITY_RESULTS`` if set);
    the terminal summary repeats it."""
    EMITTED.append(text)
    print(text, flush=True)
    target = os.environ.get(RESULTS_ENV)
    if target:
        with open(target, "a") as f:
            f.write(text + "\n")


@dataclass(frozen=True)
class Fault:
    """One fault the test injected: when (``time.time()``), what, and the process it hit."""

    t: float
    kind: str
    pid: int | None = None


@dataclass
class Figures:
    """What a run came to (printed as one JSON line by :meth:`emit`)."""

    test: str
    store: str
    acknowledged_starts: int = 0
    completed: int = 0
    lost: int = 0
    stuck: int = 0
    duplicate_history_commits: int = 0
    reruns_after_recorded_completion: int = 0
    duplicate_rate: float = 0.0
    output_mismatches: int = 0
    replay_mismatches: int = 0
    recovery_latency_p50_s: float | None = None
    recovery_latency_p99_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The JSON line (without the problem list, which goes into assertion messages)."""
        data = asdict(self)
        data.pop("problems")
        extra = data.pop("extra")
        data.update(extra)
        return json.dumps(data, sort_keys=False)

    def emit(self) -> None:
        """Print the JSON line (and append it to ``$TREADLE_RELIABILITY_RESULTS`` if set)."""
        emit_line(self.line())

    def assert_sound(self, context: str = "") -> None:
        """Fail unless nothing was lost, stuck, committed twice or re-run after completion."""
        detail = (
            f"{self.line()}\n" + "\n".join(self.problems[:25]) + (f"\n{context}" if context else "")
        )
        assert self.lost == 0, detail
        assert self.stuck == 0, detail
        assert self.duplicate_history_commits == 0, detail
        assert self.reruns_after_recorded_completion == 0, detail
        assert self.output_mismatches == 0, detail
        assert self.replay_mismatches == 0, detail


def brief(event: HistoryEvent) -> str:
    """One history event in a few characters: its kind and the ids that matter."""
    if isinstance(event, TaskScheduled | TimerCreated | SubOrchestrationInstanceCreated):
        return f"{event.KIND}#{event.event_id}"
    if isinstance(
        event,
        TaskCompleted
        | TaskFailed
        | SubOrchestrationInstanceCompleted
        | SubOrchestrationInstanceFailed,
    ):
        return f"{event.KIND}->{event.task_scheduled_id}"
    if isinstance(event, TimerFired):
        return f"TimerFired->{event.timer_id}"
    return event.KIND


def replays_to(history: list[HistoryEvent], name: str, output: str | None) -> bool:
    """Whether ``history`` replays through the suite's workflow ``name`` to ``output``: one
    consistent run, with nothing a stale writer slipped in."""
    workflow = {w.__name__: w for w in WORKFLOWS}.get(name)
    if workflow is None:
        return True  # not one of the suite's
    result = replay(workflow, history)
    return result.failure is None and json.loads(result.output or "null") == json.loads(
        output or "null"
    )


def duplicate_commits(history: list[HistoryEvent], raised: Iterable[str] = ()) -> int:
    """History events recorded more often than once: a step scheduled twice, a task, timer
    or child resolved twice, an outcome recorded twice, or an event payload that was raised
    once (``raised``, each unique) delivered twice."""
    scheduled = Counter(
        e.event_id
        for e in history
        if isinstance(e, TaskScheduled | TimerCreated | SubOrchestrationInstanceCreated)
    )
    resolved = Counter(
        e.task_scheduled_id
        for e in history
        if isinstance(
            e,
            TaskCompleted
            | TaskFailed
            | SubOrchestrationInstanceCompleted
            | SubOrchestrationInstanceFailed,
        )
    )
    fired = Counter(e.timer_id for e in history if isinstance(e, TimerFired))
    ends = sum(1 for e in history if isinstance(e, ExecutionCompleted))
    unique = set(raised)
    events = Counter(e.input for e in history if isinstance(e, EventRaised) and e.input in unique)
    extra = sum(n - 1 for counter in (scheduled, resolved, fired, events) for n in counter.values())
    return extra + max(0, ends - 1)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 3)


def recovery_latencies(rows: list[tuple[Any, ...]], faults: list[Fault]) -> list[float]:
    """For each fault: how long until the work it interrupted was done elsewhere.

    The executions a fault interrupted are those of its process that started before it and
    never returned; the fault's latency is the time until each of their tasks returned in
    some process. A fault that interrupted none (or hit no process) counts the time until
    the next execution returned anywhere.
    """
    returns: dict[tuple[str, int], list[float]] = {}
    all_returns: list[float] = []
    returned = set()
    for kind, instance, task_id, execution, _attempt, pid, t, _redo in rows:
        if kind == "return":
            returns.setdefault((instance, task_id), []).append(t)
            all_returns.append(t)
            returned.add((pid, execution))
    all_returns.sort()
    out: list[float] = []
    for fault in faults:
        interrupted = {
            (instance, task_id)
            for kind, instance, task_id, execution, _a, pid, t, _r in rows
            if kind == "start"
            and pid == fault.pid
            and t <= fault.t
            and (pid, execution) not in returned
        }
        if interrupted:
            ends = [
                min((t for t in returns.get(key, []) if t > fault.t), default=None)
                for key in interrupted
            ]
            known = [t for t in ends if t is not None]
            if known:
                out.append(max(known) - fault.t)
        else:
            later = next((t for t in all_returns if t > fault.t), None)
            if later is not None:
                out.append(later - fault.t)
    return out


def check(
    test: str,
    store: str,
    client: wf.WorkflowClient,
    expected: Mapping[str, object],
    ledger: Ledger,
    faults: list[Fault] | None = None,
    raised: Mapping[str, Iterable[str]] | None = None,
    expect_status: Mapping[str, wf.WorkflowStatus] | None = None,
    acknowledged: int | None = None,
    same: Callable[[object, object], bool] = lambda got, want: got == want,
) -> Figures:
    """Compare the store with what the test expects and with the ledger.

    Args:
        expected: every acknowledged start (its ``schedule_new_workflow`` returned): instance
            id -> the output it must complete with (children included if the test knows them).
        raised: instance id -> the payloads of events raised to it (each raised once, each
            unique): one delivered twice is a duplicate commit.
        expect_status: instances that must end otherwise than COMPLETED (terminated ones).
        acknowledged: the starts the test made (by default, one per expected instance;
            children come from their parents' starts).
        same: whether an output (decoded) is the one expected.
    """
    figures = Figures(
        test=test,
        store=store,
        acknowledged_starts=len(expected) if acknowledged is None else acknowledged,
    )
    figures.extra["instances"] = len(expected)
    raised = raised or {}
    expect_status = expect_status or {}
    for iid, want in expected.items():
        state = client.get_workflow_state(iid)
        status = state.runtime_status if state is not None else None
        wanted = expect_status.get(iid, wf.WorkflowStatus.COMPLETED)
        if state is not None and state.runtime_status not in ENDED:
            figures.stuck += 1
            events = " ".join(brief(e) for e in client.get_workflow_history(iid))
            figures.problems.append(f"{iid} stuck {state.runtime_status.name}: {events}")
        elif state is None or status is not wanted:
            figures.lost += 1
            detail = "missing" if state is None else state.runtime_status.name
            if state is not None and state.failure_details is not None:
                detail += f": {state.failure_details.message}"
            figures.problems.append(f"{iid} lost ({detail})")
        elif wanted is wf.WorkflowStatus.COMPLETED:
            figures.completed += 1
            got = json.loads(state.serialized_output or "null")
            if not same(got, want):
                figures.output_mismatches += 1
                figures.problems.append(f"{iid} output {state.serialized_output} != {want}")
        if state is not None:
            history = client.get_workflow_history(iid)
            dup = duplicate_commits(history, raised.get(iid, ()))
            if dup:
                figures.duplicate_history_commits += dup
                events = " ".join(brief(e) for e in history)
                figures.problems.append(f"{iid}: {dup} duplicate commits in its history: {events}")
            if status is wf.WorkflowStatus.COMPLETED and not replays_to(
                history, state.name, state.serialized_output
            ):
                figures.replay_mismatches += 1
                figures.problems.append(f"{iid}: its history does not replay to its output")

    rows = ledger.rows()
    starts = [r for r in rows if r[0] == "start"]
    lean = not starts
    if lean:  # a lean ledger (the soak): returns only, no redo check made
        starts = [r for r in rows if r[0] == "return"]
    redo = [r for r in starts if r[7] == 1]
    figures.reruns_after_recorded_completion = len(redo)
    figures.problems += [f"re-run after its completion was recorded: {r}" for r in redo[:10]]
    distinct = {(r[1], r[2]) for r in starts}
    figures.duplicate_rate = round((len(starts) - len(distinct)) / max(1, len(starts)), 4)
    latencies = recovery_latencies(rows, faults or [])
    figures.recovery_latency_p50_s = percentile(latencies, 0.50)
    figures.recovery_latency_p99_s = percentile(latencies, 0.99)
    figures.extra["executions"] = len(starts)
    figures.extra["inconclusive_redo_checks"] = (
        None if lean else sum(1 for r in starts if r[7] is None)
    )
    if faults:
        figures.extra["faults"] = dict(Counter(f.kind for f in faults))
    return figures
