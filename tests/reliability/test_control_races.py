"""Control-plane races: a hypothesis state machine interleaving start, raise-event (before and
after start), terminate, suspend, resume, purge and worker kills, from several clients, some
of them at the same moment on the same instance.

Each example works on a few fresh ``waiter`` instances (each waits for "go", then for a child
``napper`` that waits for "wake", then runs an activity) while two worker processes run. At
the end of an example the test lets everything finish (it resumes what is suspended and
sends the events) and checks each instance:

- one final state, and nothing after it: its history has one end event, the last one, and
  the status says the same;
- a completed one returned a payload that was really raised, and its child's result;
- a terminated one was asked to be; its child ended with it (terminated or completed), never
  left running;
- a purged one left no row behind in any table, nor did its child.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from psycopg import sql

import treadle as wf
from treadle.core.history import ExecutionCompleted, HistoryEvent
from treadle.errors import (
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store import open_store

from .conftest import scaled
from .helpers import retried
from .ledger import ENDED, Figures, Ledger, duplicate_commits
from .procs import Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

INSTANCES = 3  # per example
CLIENTS = 3
SETTLE_S = 60.0


@dataclass
class Model:
    """What the test did to one instance, and what it was told."""

    iid: str
    x: int
    started: bool = False
    payloads: list[str] = field(default_factory=list)  # "go" payloads sent (maybe delivered)
    terminate_asked: bool = False
    purged: bool = False
    # (a start and a purge of the instance in flight at once, from two clients: the store may
    # have taken them in either order, so after them the instance may be gone or started anew)
    in_flight: dict[str, int] = field(default_factory=lambda: {"start": 0, "purge": 0})
    start_raced_purge: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, op: str) -> None:
        """A start or a purge call begins (see ``start_raced_purge``)."""
        with self.lock:
            other = "purge" if op == "start" else "start"
            if self.in_flight[other]:
                self.start_raced_purge = True
            self.in_flight[op] += 1

    def end(self, op: str) -> None:
        """That call returned (or raised)."""
        with self.lock:
            self.in_flight[op] -= 1


class Tables:
    """Rows per instance id in every table of the store that has an ``instance_id`` column."""

    def __init__(self, url: str) -> None:
        self._url = url
        if url.startswith("sqlite"):
            self._path = url.removeprefix("sqlite://").split("?")[0]
        else:
            base, _, query = url.partition("?")
            self._base = base
            self._schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]

    def rows_of(self, ids: list[str]) -> dict[str, int]:
        """Table -> rows whose instance_id is one of ``ids``."""
        out: dict[str, int] = {}
        if self._url.startswith("sqlite"):
            conn = sqlite3.connect(self._path, timeout=30)
            try:
                tables = [
                    r[0]
                    for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                ]
                for table in tables:
                    columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
                    if "instance_id" in columns:
                        marks = ",".join("?" * len(ids))
                        (n,) = conn.execute(
                            f"SELECT count(*) FROM {table} WHERE instance_id IN ({marks})", ids
                        ).fetchone()
                        out[table] = int(n)
            finally:
                conn.close()
            return out
        with psycopg.connect(self._base) as pg:
            tables = [
                r[0]
                for r in pg.execute(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = %s "
                    "AND column_name = 'instance_id' ORDER BY table_name",
                    (self._schema,),
                )
            ]
            for table in tables:
                query = sql.SQL("SELECT count(*) FROM {}.{} WHERE instance_id = ANY(%s)").format(
                    sql.Identifier(self._schema), sql.Identifier(table)
                )
                row = pg.execute(query, (ids,)).fetchone()
                out[table] = int(row[0]) if row else 0
        return out


def _ends(history: list[HistoryEvent]) -> list[int]:
    """Positions of the events that end a run (a termination's too: ExecutionTerminated is
    the request, ExecutionCompleted with status TERMINATED its end)."""
    return [i for i, e in enumerate(history) if isinstance(e, ExecutionCompleted)]


def test_control_plane_races_leave_one_final_state_and_no_orphans(
    store_url: str, tmp_path: Path
) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    clients = [wf.WorkflowClient(open_store(store_url)) for _ in range(CLIENTS)]
    for c in clients:
        c.operations.control_wait_s = 2.0
    tables = Tables(store_url)
    args = [store_url, str(ledger_path), "--lease", "3", "--work", "0.01"]
    workers = Workers(tmp_path, [args, args])
    figures = Figures(test="control_races", store=backend)
    tally: dict[str, int] = {
        "examples": 0,
        "operations": 0,
        "concurrent_bursts": 0,
        "kills": 0,
        "purged": 0,
        "terminated": 0,
        "events_after_end": 0,
        "orphan_rows": 0,
        "children_outliving_parent": 0,
        "refused_purges": 0,
        "starts_after_racing_purge": 0,
    }
    serial = [0]

    def problem(text: str) -> None:
        figures.problems.append(text)

    class Races(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            serial[0] += 1
            tally["examples"] += 1
            self.models = [
                Model(f"r{serial[0]:04d}-{k}", 100 * serial[0] + k) for k in range(INSTANCES)
            ]
            self.sent = 0

        def _client(self, k: int) -> wf.WorkflowClient:
            return clients[k % CLIENTS]

        def _do(self, call: Callable[[], Any]) -> None:
            tally["operations"] += 1
            try:
                retried(call, "a control call")
            except (WorkflowNotFoundError, WorkflowAlreadyExistsError):
                pass  # raced with a start or a purge: a refusal, not a fault
            except WorkflowStateError:
                tally["refused_purges"] += 1  # a purge of an unfinished instance

        def _payload(self, m: Model) -> str:
            self.sent += 1
            text = f"{m.iid}#{self.sent}"
            m.payloads.append(text)
            return text

        # ---- the operations ------------------------------------------------------------
        def start(self, m: Model, client: wf.WorkflowClient) -> None:
            def call() -> None:
                try:
                    client.schedule_new_workflow("waiter", input=m.x, instance_id=m.iid)
                    m.started = True
                    m.purged = False
                except WorkflowAlreadyExistsError:
                    pass

            m.begin("start")
            try:
                self._do(call)
            finally:
                m.end("start")

        def raise_go(self, m: Model, client: wf.WorkflowClient) -> None:
            payload = self._payload(m)
            self._do(lambda: client.raise_workflow_event(m.iid, "go", data=payload))

        def terminate(self, m: Model, client: wf.WorkflowClient) -> None:
            m.terminate_asked = True  # (it may race with the start: then it is refused)
            self._do(lambda: client.terminate_workflow(m.iid))

        def suspend(self, m: Model, client: wf.WorkflowClient) -> None:
            self._do(lambda: client.pause_workflow(m.iid))

        def resume(self, m: Model, client: wf.WorkflowClient) -> None:
            self._do(lambda: client.resume_workflow(m.iid))

        def purge(self, m: Model, client: wf.WorkflowClient) -> None:
            def call() -> None:
                if client.purge_workflow(m.iid) > 0:
                    m.purged = True
                    tally["purged"] += 1

            m.begin("purge")
            try:
                self._do(call)
            finally:
                m.end("purge")

        OPS = ("start", "raise_go", "terminate", "suspend", "resume", "purge")

        @initialize()
        def nothing_yet(self) -> None:
            """(every example begins with its instances unstarted)"""

        @rule(
            k=st.integers(0, INSTANCES - 1),
            op=st.sampled_from(OPS * 3 + ("kill",)),
            c=st.integers(0, 9),
        )
        def one(self, k: int, op: str, c: int) -> None:
            if op == "kill":
                tally["kills"] += 1
                slot = c % 2
                workers.kill(slot)
                workers.restart(slot)
            else:
                getattr(self, op)(self.models[k], self._client(c))

        @rule(
            k=st.integers(0, INSTANCES - 1),
            ops=st.lists(st.sampled_from(OPS), min_size=2, max_size=4),
        )
        def burst(self, k: int, ops: list[str]) -> None:
            """Several clients on one instance at the same moment."""
            tally["concurrent_bursts"] += 1
            m = self.models[k]
            errors: list[BaseException] = []
            barrier = threading.Barrier(len(ops))

            def run(i: int, op: str) -> None:
                try:
                    barrier.wait(timeout=10)
                    getattr(self, op)(m, self._client(i))
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(i, op)) for i, op in enumerate(ops)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors

        def teardown(self) -> None:
            settle(self.models)

    def settle(models: list[Model]) -> None:
        """Let every instance finish, then check it."""
        client = clients[0]
        time.sleep(1.0)  # control messages sent last are taken first (a terminate, say)
        deadline = time.monotonic() + SETTLE_S
        live = [m for m in models if m.started and (not m.purged or m.start_raced_purge)]
        while time.monotonic() < deadline:
            workers.respawn_exited()
            waiting = []
            for m in live:
                state = retried(partial(client.get_workflow_state, m.iid), "a read")[0]
                if state is None or state.runtime_status in ENDED:
                    continue
                waiting.append(m)
                if state.runtime_status is wf.WorkflowStatus.SUSPENDED:
                    retried(partial(client.resume_workflow, m.iid), "resume")
                if not any(p for p in m.payloads if p.endswith("!")):
                    payload = f"{m.iid}#end!"
                    m.payloads.append(payload)
                    retried(
                        partial(client.raise_workflow_event, m.iid, "go", data=payload), "raise"
                    )
                child = f"{m.iid}.c"
                with_child = retried(partial(client.get_workflow_state, child), "a read")[0]
                if with_child is not None and with_child.runtime_status not in ENDED:
                    if with_child.runtime_status is wf.WorkflowStatus.SUSPENDED:
                        retried(partial(client.resume_workflow, child), "resume")
                    # (its parent is not terminated: it waits for its child, which waits
                    # for this)
                    retried(partial(client.raise_workflow_event, child, "wake"), "raise")
            if not waiting:
                break
            time.sleep(0.2)
        for m in models:
            verify(m)

    def verify(m: Model) -> None:
        client = clients[0]
        state = client.get_workflow_state(m.iid)
        child = client.get_workflow_state(f"{m.iid}.c")
        if m.purged and m.start_raced_purge and state is not None:
            # (the start that raced the purge was taken after it: a started instance, checked
            # as one; had the purge been taken last, nothing would be left)
            tally["starts_after_racing_purge"] += 1
            m.purged = False
        if m.purged or not m.started:
            if m.purged:
                left = {t: n for t, n in tables.rows_of([m.iid, f"{m.iid}.c"]).items() if n}
                if state is not None or left:
                    tally["orphan_rows"] += sum(left.values()) or 1
                    problem(f"{m.iid} purged, yet rows are left: {left}")
            return
        figures.acknowledged_starts += 1
        if state is None:
            figures.lost += 1
            problem(f"{m.iid} started, never purged, and gone")
            return
        if state.runtime_status not in ENDED:
            figures.stuck += 1
            problem(f"{m.iid} still {state.runtime_status.name} after {SETTLE_S:.0f} s")
            return
        history = client.get_workflow_history(m.iid)
        ends = _ends(history)
        figures.duplicate_history_commits += duplicate_commits(history, m.payloads)
        after = [e.KIND for e in history[ends[-1] + 1 :]] if ends else []
        if len(ends) != 1 or any(not kind.startswith("Orchestrator") for kind in after):
            tally["events_after_end"] += 1
            problem(f"{m.iid}: end events {[history[i] for i in ends]}; after the last: {after}")
        status = state.runtime_status
        if status is wf.WorkflowStatus.COMPLETED:
            figures.completed += 1
            output = state.serialized_output or "null"
            got = json.loads(output)
            if not (isinstance(got, list) and got[0] in m.payloads and got[1] == m.x + 4):
                figures.output_mismatches += 1
                problem(f"{m.iid}: output {output}; payloads sent {m.payloads}")
        elif status is wf.WorkflowStatus.TERMINATED:
            tally["terminated"] += 1
            if not m.terminate_asked:
                figures.lost += 1
                problem(f"{m.iid} TERMINATED without being asked to")
            if child is not None and child.runtime_status not in ENDED:
                tally["children_outliving_parent"] += 1
                problem(f"{m.iid} terminated, its child still {child.runtime_status.name}")
        else:
            figures.lost += 1
            detail = state.failure_details.message if state.failure_details else ""
            problem(f"{m.iid} ended {status.name}: {detail}")

    Races.TestCase.settings = settings(
        max_examples=scaled(12, 2),
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    try:
        run_state_machine_as_test(  # type: ignore[no-untyped-call]
            Races, settings=Races.TestCase.settings
        )
    finally:
        exit_codes = workers.stop()
        for c in clients:
            c.close()
    rows = ledger.rows()
    starts = [r for r in rows if r[0] == "start"]
    figures.reruns_after_recorded_completion = sum(1 for r in starts if r[7] == 1)
    distinct = {(r[1], r[2]) for r in starts}
    figures.duplicate_rate = round((len(starts) - len(distinct)) / max(1, len(starts)), 4)
    figures.extra.update(tally)
    figures.extra["unplanned_exits"] = len(workers.respawned)
    figures.emit()
    figures.assert_sound(workers.tails())
    assert tally["events_after_end"] == 0, figures.problems
    assert tally["orphan_rows"] == 0, figures.problems
    assert tally["children_outliving_parent"] == 0, figures.problems
    assert exit_codes == [0, 0], workers.tails()
