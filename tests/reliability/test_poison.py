"""Poison work: an activity that kills its worker process on every attempt, a workflow input
that cannot be decoded, a workflow that spins (a loop that never yields).

Each must be parked (its instance ended, not retried for ever) with a clear reason, after a
bounded number of attempts, while healthy work beside it completes and the workers (under a
supervisor that restarts the ones that die) keep up.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import treadle as wf
from treadle.store import open_store

from .helpers import drain
from .ledger import Ledger, emit_line
from .procs import Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

HEALTHY = 20
PARK_S = 120.0  # poison must be parked by then
MAX_CRASHES = 10  # executions of an activity that kills its process, at most


def _healthy(client: wf.WorkflowClient) -> dict[str, int]:
    out = {}
    for x in range(HEALTHY):
        iid = f"ok{x:03d}"
        client.schedule_new_workflow("chain", input=x, instance_id=iid)
        out[iid] = x + 3
    return out


def _healthy_done(client: wf.WorkflowClient, expected: dict[str, int]) -> list[str]:
    wrong = []
    for iid, want in expected.items():
        state = client.get_workflow_state(iid)
        if (
            state is None
            or state.runtime_status is not wf.WorkflowStatus.COMPLETED
            or json.loads(state.serialized_output or "null") != want
        ):
            wrong.append(f"{iid}: {state.runtime_status.name if state else 'missing'}")
    return wrong


def _parked(client: wf.WorkflowClient, iid: str, tick: object = None) -> wf.WorkflowState | None:
    deadline = time.monotonic() + PARK_S
    while time.monotonic() < deadline:
        if callable(tick):
            tick()
        state = client.get_workflow_state(iid)
        if state is not None and state.runtime_status not in (
            wf.WorkflowStatus.PENDING,
            wf.WorkflowStatus.RUNNING,
        ):
            return state
        time.sleep(0.25)
    return client.get_workflow_state(iid)


def _emit(**fields: object) -> None:
    emit_line(json.dumps(fields))


def _reason(state: wf.WorkflowState | None) -> str:
    if state is None or state.failure_details is None:
        return ""
    return f"{state.failure_details.error_type}: {state.failure_details.message}"


def test_an_activity_that_kills_its_worker_every_time_is_parked(
    store_url: str, tmp_path: Path
) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    args = [store_url, str(ledger_path), "--lease", "2", "--no-check"]
    workers = Workers(tmp_path, [args, args])
    try:
        client.schedule_new_workflow("doomed", input=1, instance_id="doomed")
        expected = _healthy(client)
        state = _parked(client, "doomed", workers.respawn_exited)
        drain(client, list(expected), 60.0, workers.respawn_exited)
    finally:
        workers.stop()
    crashes = sum(1 for r in ledger.rows() if r[0] == "start" and r[1] == "doomed")
    wrong = _healthy_done(client, expected)
    client.close()
    status = state.runtime_status.name if state else "missing"
    _emit(
        test="poison_crashing_activity",
        store=backend,
        status=status,
        executions=crashes,
        worker_deaths=len(workers.respawned),
        healthy_completed=HEALTHY - len(wrong),
        reason=_reason(state)[:200],
    )
    assert not wrong, wrong
    assert state is not None and status in ("FAILED", "STALLED"), (
        f"an activity that killed its worker {crashes} times is still {status} after "
        f"{PARK_S:.0f} s: it must be parked after a bounded number of attempts"
    )
    assert crashes <= MAX_CRASHES, f"it ran {crashes} times"
    assert any(w in _reason(state).lower() for w in ("attempt", "crash", "killed", "died")), (
        _reason(state)
    )


def _corrupt_start(store_url: str, iid: str) -> None:
    """Make the queued start of ``iid`` carry an input that is not JSON."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite://").split("?")[0])
        try:
            (text,) = conn.execute(
                "SELECT event FROM inbox WHERE instance_id = ?", (iid,)
            ).fetchone()
            event = json.loads(text)
            event["input"] = '{"not json'
            conn.execute(
                "UPDATE inbox SET event = ? WHERE instance_id = ?", (json.dumps(event), iid)
            )
            conn.execute(
                "UPDATE instances SET input = ? WHERE instance_id = ?", ('{"not json', iid)
            )
            conn.commit()
        finally:
            conn.close()
        return
    base, _, query = store_url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
    with psycopg.connect(base, autocommit=True) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        row = pg.execute("SELECT event FROM inbox WHERE instance_id = %s", (iid,)).fetchone()
        assert row is not None
        event = json.loads(row[0])
        event["input"] = '{"not json'
        pg.execute("UPDATE inbox SET event = %s WHERE instance_id = %s", (json.dumps(event), iid))
        pg.execute("UPDATE instances SET input = %s WHERE instance_id = %s", ('{"not json', iid))


def test_an_input_that_cannot_be_decoded_is_parked(store_url: str, tmp_path: Path) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    ledger_path = tmp_path / "ledger.db"
    Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    client.schedule_new_workflow("chain", input=1, instance_id="garbled")
    _corrupt_start(store_url, "garbled")
    expected = _healthy(client)
    args = [store_url, str(ledger_path), "--lease", "2", "--no-check"]
    workers = Workers(tmp_path, [args])
    try:
        state = _parked(client, "garbled", workers.respawn_exited)
        drain(client, list(expected), 60.0, workers.respawn_exited)
    finally:
        codes = workers.stop()
    wrong = _healthy_done(client, expected)
    client.close()
    status = state.runtime_status.name if state else "missing"
    _emit(
        test="poison_undecodable_input",
        store=backend,
        status=status,
        worker_deaths=len(workers.respawned),
        healthy_completed=HEALTHY - len(wrong),
        reason=_reason(state)[:200],
    )
    assert not wrong, wrong
    assert status in ("FAILED", "STALLED"), f"an undecodable input left its instance {status}"
    assert any(w in _reason(state).lower() for w in ("json", "decod", "input")), _reason(state)
    assert workers.respawned == [] and codes == [0], workers.tails()


def test_a_spinning_workflow_is_stopped_and_others_go_on(store_url: str, tmp_path: Path) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    ledger_path = tmp_path / "ledger.db"
    Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    args = [store_url, str(ledger_path), "--lease", "2", "--no-check", "--turn-timeout", "2"]
    workers = Workers(tmp_path, [args])
    try:
        client.schedule_new_workflow("spinner", input=1, instance_id="spinner")
        time.sleep(0.5)
        began = time.monotonic()
        expected = _healthy(client)  # started while it spins
        healthy_s = drain(client, list(expected), 60.0)
        state = _parked(client, "spinner", workers.respawn_exited)
        parked_s = time.monotonic() - began
    finally:
        codes = workers.stop()
    wrong = _healthy_done(client, expected)
    client.close()
    status = state.runtime_status.name if state else "missing"
    _emit(
        test="poison_spinning_workflow",
        store=backend,
        status=status,
        parked_within_s=round(parked_s, 1),
        healthy_completed=HEALTHY - len(wrong),
        healthy_s=round(healthy_s, 1),
        reason=_reason(state)[:200],
    )
    assert not wrong, wrong
    assert status in ("FAILED", "STALLED"), f"a spinning workflow is still {status}"
    assert workers.respawned == [] and codes == [0], workers.tails()
