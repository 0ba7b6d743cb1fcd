"""Ambiguous commits: every commit of the workers (and of the test's client) may fail before,
during or after it is made (the stores' test-only fault hook, see :mod:`reliability.faults`).

``after`` is the hard one: the transaction committed, but the caller saw an error, so whatever
it does next (retry, give up the instance, run the activity again) meets a store that already
holds its change. Nothing may be lost, stuck, recorded twice or re-run once its completion was
recorded; the workers must not exit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import treadle as wf
from treadle.store import open_store

from . import faults
from .conftest import scale, scaled
from .driver import run_journeys
from .helpers import seed
from .ledger import Ledger, check
from .procs import Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

WORKERS = 3
PROBABILITY = 0.03  # of each commit failing (workers and client alike)
CLIENT_PROBABILITY = 0.2
START_S = 8.0


@pytest.mark.parametrize("mode", faults.MODES)
def test_commits_failing_before_during_or_after_lose_and_repeat_nothing(
    mode: str, store_url: str, tmp_path: Path
) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    rng = seed(f"ambiguous commits ({mode}) on {backend}")
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    args = [store_url, str(ledger_path), "--lease", "3", "--faults", f"{mode}:{PROBABILITY}"]
    workers = Workers(tmp_path, [args] * WORKERS)
    # the client's commits too (more often: it makes few)
    injector = faults.install(f"{mode}:{CLIENT_PROBABILITY}", backend)
    try:
        run = run_journeys(
            client,
            workers,
            ledger,
            scaled(40, 5),
            START_S * scale(),
            rng,
            before_drain=faults.uninstall,  # the faults stop, then the system drains
        )
    finally:
        faults.uninstall()
        exit_codes = workers.stop()
    figures = check(
        "ambiguous_commits",
        backend,
        client,
        run.expected,
        ledger,
        raised=run.raised,
        acknowledged=run.journeys,
    )
    client.close()
    figures.extra.update(
        mode=mode,
        probability=PROBABILITY,
        client_faults=injector.injected,
        chaos_s=round(run.chaos_s, 1),
        drain_s=round(run.drain_s, 1),
        unplanned_exits=len(workers.respawned),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    assert injector.injected > 0, "no fault reached the client's commits"
    assert exit_codes == [0] * WORKERS, workers.tails()
    assert workers.respawned == [], workers.tails()
