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
from .driver import run_journeys
from .helpers import seed
from .ledger import Fault, Ledger, check
from .procs import PgCluster, Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

WORKERS = 3
LEASE_S = 3.0
START_S = 20.0  # starts arrive over this long (at CI size), faults going on meanwhile


def terminate_sessions(url: str) -> int:
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
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    cluster: PgCluster | None = (
        request.getfixturevalue("pg_cluster") if backend == "postgres" else None
    )
    args = [store_url, str(ledger_path), "--lease", str(LEASE_S)]
    workers = Workers(tmp_path, [args] * WORKERS)
    faults: list[Fault] = []
    server_faults = ["pg-restart", "pg-terminate"] if cluster is not None else []
    next_fault = [time.monotonic() + rng.uniform(0.5, 1.5)]

    def fault(now: float) -> None:
        if now < next_fault[0]:
            return
        next_fault[0] = now + rng.uniform(0.5, 2.0)
        kind = server_faults.pop(0) if server_faults and rng.random() < 0.3 else "kill"
        if kind == "kill":
            slot = rng.randrange(WORKERS)
            faults.append(Fault(time.time(), "kill", workers.kill(slot)))
            time.sleep(rng.uniform(0.0, 0.5))  # a gap before the new process, sometimes
            workers.restart(slot)
        elif kind == "pg-restart" and cluster is not None:
            faults.append(Fault(time.time(), kind))
            cluster.restart_immediate()
        else:
            faults.append(Fault(time.time(), kind))
            terminate_sessions(store_url)

    try:
        run = run_journeys(
            client,
            workers,
            ledger,
            scaled(100, minimum=10),
            START_S * scale(),
            rng,
            fault,
            done=lambda: not server_faults,
        )
    finally:
        exit_codes = workers.stop()
    figures = check(
        "crash_chaos",
        backend,
        client,
        run.expected,
        ledger,
        faults=faults,
        raised=run.raised,
        acknowledged=run.journeys,
    )
    client.close()
    figures.extra.update(
        workers=WORKERS,
        chaos_s=round(run.chaos_s, 1),
        drain_s=round(run.drain_s, 1),
        unplanned_exits=len(workers.respawned),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    assert exit_codes == [0] * WORKERS, workers.tails()
    kinds = {f.kind for f in faults}
    assert "kill" in kinds
    if cluster is not None:
        assert {"pg-restart", "pg-terminate"} <= kinds, f"faults injected: {kinds}"
