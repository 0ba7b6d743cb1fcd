"""Crash chaos: three worker processes SIGKILLed and restarted at random while they run
journeys (an activity, a timer, two child workflows, an external event, an activity), on
SQLite and on PostgreSQL; on PostgreSQL the server is also crashed and restarted (``pg_ctl
restart -m immediate`` on the suite's own cluster) and the workers' sessions terminated
(``pg_terminate_backend``).

Starts and events are sent while the faults go on. Once they stop and the system drained, the
checker (see :mod:`reliability.ledger`) finds nothing lost, stuck, committed twice or re-run
after its completion was recorded, and every output (and every timer) right.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

import treadle as wf
from treadle.store import open_store

from .conftest import scale, scaled
from .helpers import drain, raise_event, seed, start
from .ledger import Fault, Ledger, check
from .procs import PgCluster, Workers
from .workloads import journey_executions, journey_expected

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

WORKERS = 3
LEASE_S = 3.0
START_S = 20.0  # starts arrive over this long (at CI size), faults going on meanwhile
CHAOS_S = 300.0  # the chaos phase ends by then, whatever the progress
DRAIN_S = 180.0


def _terminate_sessions(url: str) -> int:
    """Terminate the server sessions of the store's schema (named after it); return how many."""
    base, _, query = url.partition("?")
    name = dict(p.split("=", 1) for p in query.split("&"))["application_name"]
    with psycopg.connect(base, autocommit=True, application_name="reliability-killer") as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_random_kills_and_restarts_lose_and_redo_nothing(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    rng = seed(f"crash chaos on {backend}")
    journeys = scaled(100, minimum=10)
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    cluster: PgCluster | None = (
        request.getfixturevalue("pg_cluster") if backend == "postgres" else None
    )
    args = [store_url, str(ledger_path), "--lease", str(LEASE_S)]
    workers = Workers(tmp_path, [args] * WORKERS)
    faults: list[Fault] = []
    expected: dict[str, object] = {}
    raised: dict[str, list[str]] = {}
    pending_events: list[tuple[float, str, int]] = []
    total = journeys * journey_executions()
    began = time.monotonic()
    next_fault = began + rng.uniform(0.5, 1.5)
    server_faults = ["pg-restart", "pg-terminate"] if cluster is not None else []
    try:
        scheduled = 0
        while time.monotonic() - began < CHAOS_S:
            now = time.monotonic()
            # starts arrive steadily, faults or not
            due = min(journeys, int(journeys * (now - began) / (START_S * scale())) + 1)
            if scheduled < due:
                for _ in range(due - scheduled):
                    iid = f"j{scheduled:05d}"
                    start(client, "journey", scheduled, iid)
                    expected.update(journey_expected(iid, scheduled, scheduled))
                    # the event before the workflow waits for it, or some time later
                    pending_events.append(
                        (now + rng.choice([0.0, rng.uniform(0, 3)]), iid, scheduled)
                    )
                    scheduled += 1
            for item in [e for e in pending_events if e[0] <= now]:
                pending_events.remove(item)
                _, iid, x = item
                if raise_event(client, iid, "go", x):
                    raised[iid] = [str(x)]
            if now >= next_fault:
                next_fault = now + rng.uniform(0.5, 2.0)
                kind = server_faults.pop(0) if server_faults and rng.random() < 0.3 else "kill"
                if kind == "kill":
                    slot = rng.randrange(WORKERS)
                    faults.append(Fault(time.time(), "kill", workers.kill(slot)))
                    time.sleep(rng.uniform(0.0, 0.5))
                    workers.restart(slot)
                elif kind == "pg-restart" and cluster is not None:
                    faults.append(Fault(time.time(), kind))
                    cluster.restart_immediate()
                elif kind == "pg-terminate":
                    faults.append(Fault(time.time(), kind))
                    _terminate_sessions(store_url)
            workers.respawn_exited()
            if (
                scheduled == journeys
                and not pending_events
                and not server_faults
                and ledger.returns() >= 0.8 * total
            ):
                break
            time.sleep(0.05)
        chaos_s = time.monotonic() - began
        for _, iid, x in pending_events:
            if raise_event(client, iid, "go", x):
                raised[iid] = [str(x)]
        drain_s = drain(client, list(expected), DRAIN_S, workers.respawn_exited)
    finally:
        exit_codes = workers.stop()
    figures = check(
        "crash_chaos",
        backend,
        client,
        expected,
        ledger,
        faults=faults,
        raised=raised,
        acknowledged=journeys,
    )
    client.close()
    figures.extra.update(
        workers=WORKERS,
        chaos_s=round(chaos_s, 1),
        drain_s=round(drain_s, 1),
        unplanned_exits=len(workers.respawned),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    assert exit_codes == [0] * WORKERS, workers.tails()
    kinds = {f.kind for f in faults}
    assert "kill" in kinds
    if cluster is not None:
        assert {"pg-restart", "pg-terminate"} <= kinds, f"faults injected: {kinds}"
