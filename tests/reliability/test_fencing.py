"""Fencing: a worker SIGSTOPped past its lease while another takes its work over, then
SIGCONTed; the workers' clocks skewed against each other. No stale write may land.

Three workers with a short lease run journeys whose activities take a while; their runtimes'
clocks (and, on SQLite, their stores' clocks, which set lease expiries) run ``SKEWS_S`` apart.
Several times the test pauses the worker holding the most instance leases until another
worker has taken over one of its instances (only lease expiry allows that: the paused
process is alive), then resumes it. The resumed worker must be fenced out (its runtime says
so), and the checker must find no trace of a stale write: no duplicate commit, no history
that does not replay to its instance's output (``stale_writes`` adds both up), nothing lost,
stuck or re-run after its completion was recorded.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import treadle as wf
from treadle.store import open_store

from .conftest import scale, scaled
from .driver import run_journeys
from .helpers import seed
from .leases import Leases, pid_of
from .ledger import Fault, Ledger, check
from .procs import Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

LEASE_S = 2.0
SKEWS_S = [0.0, 1.0, -1.0]  # each worker's clock against the real one
WORK_S = 0.3  # each activity's work: long enough to be caught by a pause
START_S = 20.0
TAKEOVER_S = 15.0  # a pause lasts until others took some of its work, or this long


def _fenced(path: Path, pid: int) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith(f"FENCED {pid} "))


def test_paused_and_skewed_workers_write_nothing_stale(store_url: str, tmp_path: Path) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    rng = seed(f"fencing on {backend}")
    ledger_path = tmp_path / "ledger.db"
    fenced_log = Path(f"{ledger_path}.fenced")
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(store_url))
    args = [
        [
            store_url,
            str(ledger_path),
            "--lease",
            str(LEASE_S),
            "--work",
            str(WORK_S),
            "--skew",
            str(skew),
            "--redo-margin",
            str(2 * max(abs(s) for s in SKEWS_S) + 0.5),
        ]
        for skew in SKEWS_S
    ]
    workers = Workers(tmp_path, args)
    leases = Leases(store_url)
    pauses = scaled(3)
    faults: list[Fault] = []
    notes: list[str] = []
    next_pause = [time.monotonic() + 2.0]

    def taken_pauses() -> int:
        return sum(1 for f in faults if f.kind == "pause")

    def pause(now: float) -> None:
        if taken_pauses() >= pauses or now < next_pause[0]:
            return
        mine = set(workers.pids())
        held = {o: h for o, h in leases.held().items() if pid_of(o) in mine and h}
        if not held:
            return
        owner = max(sorted(held), key=lambda o: len(held[o]))
        pid = pid_of(owner)
        assert pid is not None
        leases.pause(pid)
        paused_at = time.monotonic()
        try:
            time.sleep(0.2)  # what it sent just before the stop lands
            snapshot = leases.held().get(owner, {})
            tasks = leases.tasks_of(owner)
            deadline = paused_at + TAKEOVER_S
            taken: list[str] = []
            while (snapshot or tasks) and not taken and time.monotonic() < deadline:
                time.sleep(0.1)
                taken = leases.taken_over(owner, snapshot, tasks)
        finally:
            os.kill(pid, signal.SIGCONT)
        # (a paused worker whose instances all wait for events or timers holds nothing that
        # others want: such a pause is counted, and the run pauses again)
        faults.append(Fault(time.time(), "pause" if taken else "pause-idle", pid))
        notes.append(
            f"worker {pid} paused {time.monotonic() - paused_at:.1f} s holding "
            f"{len(snapshot)} instances and {len(tasks)} tasks; others took {len(taken)}"
        )
        next_pause[0] = time.monotonic() + rng.uniform(1.0, 3.0)

    try:
        run = run_journeys(
            client,
            workers,
            ledger,
            scaled(40, 5),
            START_S * scale(),
            rng,
            pause,
            done=lambda: taken_pauses() >= pauses,
        )
        # a resumed worker notices it was fenced out (a refused commit, a lost lease, an
        # activity not started) within a few leases; give it that long
        deadline = time.monotonic() + 10 * LEASE_S
        while time.monotonic() < deadline and not any(
            _fenced(fenced_log, f.pid or 0) for f in faults
        ):
            time.sleep(0.2)
    finally:
        exit_codes = workers.stop()
    # Whether a journey's timer looked on time to its workflow compares two workers' clocks
    # here, which the test skews on purpose: it is counted, not required.
    clock_backwards = [0]

    def same(got: object, want: object) -> bool:
        if isinstance(got, dict) and isinstance(want, dict) and "timer_on_time" in got:
            clock_backwards[0] += not got["timer_on_time"]
            return {**got, "timer_on_time": True} == want
        return got == want

    figures = check(
        "fencing",
        backend,
        client,
        run.expected,
        ledger,
        faults=faults,
        raised=run.raised,
        acknowledged=run.journeys,
        same=same,
    )
    client.close()
    figures.extra.update(
        stale_writes=figures.duplicate_history_commits + figures.replay_mismatches,
        pauses=taken_pauses(),
        pauses_with_nothing_taken=len(faults) - taken_pauses(),
        fenced_notices=sum(_fenced(fenced_log, pid) for pid in {f.pid or 0 for f in faults}),
        skews_s=SKEWS_S,
        workflow_clock_went_back=clock_backwards[0],
        lease_s=LEASE_S,
        chaos_s=round(run.chaos_s, 1),
        drain_s=round(run.drain_s, 1),
    )
    figures.emit()
    print("\n".join(notes))
    figures.assert_sound(workers.tails())
    assert taken_pauses() == pauses, f"only {taken_pauses()} of {pauses} pauses: {notes}"
    assert figures.extra["fenced_notices"] > 0, (
        f"no resumed worker reported being fenced out: {notes}\n{workers.tails()}"
    )
    assert exit_codes == [0] * len(SKEWS_S), workers.tails()
    assert workers.respawned == [], workers.tails()
