"""Chaos on PostgreSQL: worker processes killed, one paused past its lease, the server restarted.

Three worker processes share one PostgreSQL schema and 500 workflows of the seed's two shapes
(a 3-step task chain and a 10-item fan-out/fan-in). At random points of progress (seeded:
``TREADLE_CHAOS_SEED`` repeats a run) the test

- SIGKILLs a worker and starts a new one in its place (which frees the dead process's leases at
  once: it is on this host);
- SIGSTOPs the worker holding the most instance leases until another worker has taken over
  one of its instances, which only lease expiry allows (the paused process is alive), then
  SIGCONTs it: it must be fenced out (its stale commits refused, its leases found lost, its
  queued activities not started; it logs FENCED) and leave no duplicate in any history;
- restarts PostgreSQL (``pg_ctlcluster`` as root on a Debian host, or the shell command in
  ``$TREADLE_CHAOS_RESTART_POSTGRES``; where it cannot, it closes the run's connections
  instead, and says so).

Then it checks that nothing is lost, stuck or recorded twice, and that no activity ran again
after its result was recorded (see ``chaos_worker.py``); re-running one whose result was not
recorded yet is allowed (activities are at-least-once), and the test prints how often.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import treadle as wf
from treadle.core.history import HistoryEvent, TaskCompleted, TaskFailed, TaskScheduled
from treadle.store import InstanceQuery
from treadle.store.postgres import PostgresStore

from .chaos_worker import chain_result, fan_result
from .harness import Held, Peek, Workers, pid_of, restart_command, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CHAINS = 400
FANS = 100
FAN_WIDTH = 10
WORKERS = 3
KILLS = 10
LEASE_S = 3.0
ACTIVITIES = CHAINS * 3 + FANS * (FAN_WIDTH + 2)
STALL_S = 60.0  # no activity started for this long while work remains: fail
DEADLINE_S = 240.0  # from the first worker's start: whatever has not finished is stuck
UNFINISHED = (wf.WorkflowStatus.PENDING, wf.WorkflowStatus.RUNNING)


@dataclass
class Chaos:
    """What the run did, for the summary."""

    kills: int = 0
    pauses: int = 0
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text, flush=True)


@pytest.fixture
def chaos_store(postgres_url: str) -> Iterator[tuple[str, Peek]]:
    """A store URL with a fresh ``chaos_<uuid>`` schema (dropped afterwards), and a Peek at it."""
    schema = f"chaos_{uuid.uuid4().hex}"
    sep = "&" if "?" in postgres_url else "?"
    # Its connections are named after it, so that they can be told from anyone else's.
    url = f"{postgres_url}{sep}schema={schema}&application_name={schema}"
    yield url, Peek(postgres_url, schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _started(log: Path) -> int:
    """Activity executions begun so far."""
    return log.read_bytes().count(b"START ") if log.exists() else 0


def _wait_for_starts(log: Path, at_least: int, workers: Workers) -> None:
    last, last_change = _started(log), time.monotonic()
    while last < at_least:
        time.sleep(0.02)
        workers.respawn_exited()
        now = _started(log)
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            raise AssertionError(
                f"no activity started for {STALL_S:.0f} s ({last} of {at_least} expected "
                f"by now)\n{workers.tails()}"
            )


def _kill(rng: random.Random, workers: Workers, chaos: Chaos) -> None:
    slot = rng.randrange(WORKERS)
    workers.kill(slot)
    time.sleep(rng.uniform(0.0, 0.5))  # a gap before the new process, sometimes
    workers.restart(slot)
    chaos.kills += 1


def _instance_taken(peek: Peek, held: Held) -> list[tuple[str, datetime]]:
    """What others took of ``held``, once that includes an instance (else nothing)."""
    taken = peek.taken_over(held)
    return taken if any(what.startswith("instance") for what, _ in taken) else []


def _pause(workers: Workers, peek: Peek, log: Path, chaos: Chaos) -> None:
    """SIGSTOP the busiest worker until another one takes over its work; then SIGCONT it."""
    for _ in range(100):
        leases = peek.instance_leases()
        busiest = sorted(leases.items(), key=lambda kv: (-kv[1], kv[0]))
        owner = next((o for o, _ in busiest if workers.slot_of(pid_of(o) or -1) is not None), "")
        pid = pid_of(owner) if owner else None
        if pid is None:
            time.sleep(0.05)
            continue
        os.kill(pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        time.sleep(0.3)  # statements it sent just before the stop finish on the server
        held = peek.held_by(owner)
        if held.instances:
            break
        os.kill(pid, signal.SIGCONT)
    else:
        raise AssertionError(f"no worker held a lease to pause\n{workers.tails()}")
    try:
        # It is alive, so no new worker frees its leases: only their expiry lets others in.
        # Wait for an instance to change hands (its activities usually go first): the paused
        # worker holds that instance's state, and must be refused when it acts on it.
        taken = wait_until(
            lambda: _instance_taken(peek, held),
            timeout=30 + LEASE_S,
            what=f"another worker to take over one of the paused worker's "
            f"{len(held.instances)} instances",
            interval=0.1,
        )
        waited = time.monotonic() - paused_at
        seen_at = peek.now()
    finally:
        os.kill(pid, signal.SIGCONT)
    early = [what for what, expires in taken if expires > seen_at]
    assert not early, f"taken over before its lease expired: {early}"
    chaos.pauses += 1

    def fenced() -> int:
        return sum(1 for line in log.read_text().splitlines() if line.startswith(f"FENCED {pid} "))

    count = wait_until(
        fenced, timeout=30, what=f"the resumed worker {pid} to be fenced out", interval=0.1
    )
    chaos.note(
        f"paused worker {pid} holding {len(held.instances)} instances and {len(held.tasks)} "
        f"activity tasks; after {waited:.1f} s (lease {LEASE_S:.0f} s) others had taken "
        f"{', '.join(what for what, _ in taken[:3])}{' and more' if len(taken) > 3 else ''}; "
        f"resumed, it was fenced out {count}+ times"
    )


def _restart_postgres(url: str, peek: Peek, chaos: Chaos) -> None:
    command = restart_command(url)
    started = time.monotonic()
    if command is None:
        closed = peek.terminate_connections()
        chaos.note(
            f"postgres: no way to restart it here (set TREADLE_CHAOS_RESTART_POSTGRES); "
            f"closed the run's {closed} connections instead"
        )
    else:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        chaos.note(f"postgres restarted in {time.monotonic() - started:.1f} s: {' '.join(command)}")
    chaos.restarts += 1


def _plan(rng: random.Random) -> list[tuple[int, str]]:
    """(activity executions begun, what to do then), in order."""
    events = [(rng.uniform(0.03, 0.85), "kill") for _ in range(KILLS)]
    events.append((rng.uniform(0.10, 0.35), "pause"))
    events.append((rng.uniform(0.40, 0.70), "restart"))
    return sorted((int(f * ACTIVITIES), kind) for f, kind in events)


def _brief(history: list[HistoryEvent]) -> str:
    """A history in one line: kind, and the ids that matter here."""

    def one(event: HistoryEvent) -> str:
        if isinstance(event, TaskScheduled):
            return f"TS{event.event_id}"
        if isinstance(event, TaskCompleted | TaskFailed):
            return f"{event.KIND[4]}{event.task_scheduled_id}"
        return event.KIND[:4]

    return " ".join(one(e) for e in history)


def _unfinished(client: wf.WorkflowClient) -> int:
    page = client.store.list_instances(InstanceQuery(limit=10_000))
    return sum(1 for r in page.instances if not r.status.is_terminal)


@pytest.mark.timeout(600)
def test_workers_killed_paused_and_postgres_restarted_lose_and_redo_nothing(
    tmp_path: Path, chaos_store: tuple[str, Peek]
) -> None:
    url, peek = chaos_store
    seed = int(os.environ.get("TREADLE_CHAOS_SEED", random.randrange(1 << 30)))
    print(f"chaos seed {seed} (set TREADLE_CHAOS_SEED to repeat)", flush=True)
    rng = random.Random(seed)
    log = tmp_path / "activities.log"
    client = wf.WorkflowClient(PostgresStore(url, max_size=2))
    chaos = Chaos()
    began = time.monotonic()

    expected: dict[str, object] = {f"chain-{x:03d}": chain_result(x) for x in range(CHAINS)}
    expected.update({f"fan-{k:03d}": fan_result(FAN_WIDTH) for k in range(FANS)})
    order = sorted(expected)
    rng.shuffle(order)
    for iid in order:
        kind, number = iid.split("-")
        if kind == "chain":
            client.schedule_new_workflow("task_chain", input=int(number), instance_id=iid)
        else:
            client.schedule_new_workflow("batch_processing", input=FAN_WIDTH, instance_id=iid)
    scheduled_s = time.monotonic() - began

    workers = Workers(tmp_path, url, log, LEASE_S, WORKERS)
    try:
        for at, kind in _plan(rng):
            _wait_for_starts(log, at, workers)
            if kind == "kill":
                _kill(rng, workers, chaos)
            elif kind == "pause":
                _pause(workers, peek, log, chaos)
            else:
                _restart_postgres(url, peek, chaos)
        chaos_done_s = time.monotonic() - began
        deadline = began + DEADLINE_S
        while _unfinished(client) and time.monotonic() < deadline:
            workers.respawn_exited()
            time.sleep(0.2)
        finished_s = time.monotonic() - began
    finally:
        exit_codes = workers.stop()
    tails = workers.tails()

    # ---- instances: every one COMPLETED with the right output ----------------------------
    completed = lost = stuck = 0
    problems: list[str] = []
    for iid, want in expected.items():
        state = client.get_workflow_state(iid)
        if state is not None and state.runtime_status in UNFINISHED:
            stuck += 1
            problems.append(f"{iid} stuck {state.runtime_status.name}")
        elif (
            state is not None
            and state.runtime_status is wf.WorkflowStatus.COMPLETED
            and json.loads(state.serialized_output or "null") == want
        ):
            completed += 1
        else:
            lost += 1
            detail = "missing" if state is None else state.runtime_status.name
            if state is not None and state.failure_details is not None:
                detail += f": {state.failure_details.message}"
            elif state is not None:
                detail += f": output {state.serialized_output}"
            problems.append(f"{iid} lost ({detail})")

    # ---- histories: every step scheduled once, completed once ----------------------------
    duplicates = gaps = 0
    recorded: set[str] = set()
    for iid in expected:
        history = client.get_workflow_history(iid)
        scheduled = Counter(e.event_id for e in history if isinstance(e, TaskScheduled))
        finished = Counter(
            e.task_scheduled_id for e in history if isinstance(e, TaskCompleted | TaskFailed)
        )
        recorded.update(e.task_execution_id for e in history if isinstance(e, TaskCompleted))
        extra = sum(n - 1 for n in scheduled.values()) + sum(n - 1 for n in finished.values())
        if extra:
            duplicates += extra
            problems.append(f"{iid}: {extra} duplicate commits in its history: {_brief(history)}")
        if history and history[-1].KIND == "ExecutionCompleted" and set(finished) != set(scheduled):
            gaps += 1  # an outcome its history does not account for
            problems.append(f"{iid}: finished with steps missing a result: {_brief(history)}")
    client.close()

    # ---- activity executions -------------------------------------------------------------
    lines = log.read_text().splitlines()
    violations = [line for line in lines if line.startswith("VIOLATION")]
    stale = [line for line in lines if line.startswith("STALE")]
    starts = Counter(line.split()[1] for line in lines if line.startswith("START"))
    executions = sum(starts.values())
    reruns = executions - len(starts)
    never_ran = recorded - set(starts)
    restart_kind = "postgres restart" if restart_command(url) else "postgres connection reset"
    summary = (
        f"chaos: {len(expected)} workflows, {WORKERS} workers, {chaos.kills} kills, "
        f"{chaos.pauses} pause, {chaos.restarts} {restart_kind}: completed {completed}, "
        f"lost {lost}, stuck {stuck}, duplicate commits {duplicates}, re-executions after "
        f"completion {len(violations)}, in-flight duplicates {reruns / max(1, executions):.1%} "
        f"({reruns} of {executions} executions)"
    )
    print(summary)
    print(
        f"seed {seed}; inconclusive redo checks (delayed by the pause or the restart): "
        f"{stale}; timing: scheduled in {scheduled_s:.1f} s, chaos over at "
        f"{chaos_done_s:.1f} s, all finished at {finished_s:.1f} s, checked at "
        f"{time.monotonic() - began:.1f} s; worker exits {exit_codes}; "
        f"unplanned exits (slot, code), respawned: {workers.respawned}",
        flush=True,
    )

    context = f"{summary}\nseed {seed}\n" + "\n".join(problems[:20]) + f"\n{tails}"
    assert stuck == 0, context
    assert lost == 0, context
    assert duplicates == 0, context
    assert gaps == 0, context
    assert violations == [], f"ran again after their result was recorded: {violations[:10]}"
    assert not never_ran, f"recorded results no execution logged: {sorted(never_ran)[:10]}"
    assert len(starts) == ACTIVITIES, context
    assert (chaos.kills, chaos.pauses, chaos.restarts) == (KILLS, 1, 1)
    assert exit_codes == [0] * WORKERS, context
    assert workers.respawned == [], context  # no worker died but those the test killed
