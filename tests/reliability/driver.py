"""Drives journeys through worker processes while a test injects faults, then drains.

:func:`run_journeys` sends the starts steadily over a while (so that faults land among
them), raises each journey's event either at once (often before the workflow waits for it)
or a little later, calls the test's ``fault`` between times, and waits for everything to end.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import treadle as wf

from .helpers import drain, raise_event, start
from .ledger import Ledger
from .procs import Workers
from .workloads import journey_executions, journey_expected

CHAOS_S = 300.0  # the fault phase ends by then, whatever the progress
DRAIN_S = float(os.environ.get("TREADLE_RELIABILITY_DRAIN_S", "180"))


@dataclass
class Run:
    """What a run sent, and how long its phases took."""

    journeys: int
    expected: dict[str, object] = field(default_factory=dict)
    raised: dict[str, list[str]] = field(default_factory=dict)
    chaos_s: float = 0.0
    drain_s: float = 0.0


def run_journeys(
    client: wf.WorkflowClient,
    workers: Workers,
    ledger: Ledger,
    journeys: int,
    start_s: float,
    rng: random.Random,
    fault: Callable[[float], None] = lambda now: None,
    done: Callable[[], bool] = lambda: True,
    prefix: str = "j",
    before_drain: Callable[[], None] = lambda: None,
) -> Run:
    """Start ``journeys`` over ``start_s`` seconds, calling ``fault(now)`` every 50 ms until
    the starts and events are sent, 80% of the activities ran and ``done()`` says the test
    injected what it must; then ``before_drain()`` (the faults stop), and drain (workers that
    exit are restarted meanwhile)."""
    run = Run(journeys)
    pending: list[tuple[float, str, int]] = []
    total = journeys * journey_executions()
    began = time.monotonic()
    scheduled = 0

    def send_event(iid: str, x: int) -> None:
        if raise_event(client, iid, "go", x):
            run.raised[iid] = [str(x)]  # went through once: a second copy is a duplicate

    while time.monotonic() - began < CHAOS_S:
        now = time.monotonic()
        due = min(journeys, int(journeys * (now - began) / start_s) + 1)
        for x in range(scheduled, due):
            iid = f"{prefix}{x:05d}"
            start(client, "journey", x, iid)
            run.expected.update(journey_expected(iid, x, x))
            pending.append((now + rng.choice([0.0, rng.uniform(0, 3)]), iid, x))
        scheduled = max(scheduled, due)
        for item in [e for e in pending if e[0] <= now]:
            pending.remove(item)
            send_event(item[1], item[2])
        fault(now)
        workers.respawn_exited()
        if scheduled == journeys and not pending and done() and ledger.returns() >= 0.8 * total:
            break
        time.sleep(0.05)
    run.chaos_s = time.monotonic() - began
    for _, iid, x in pending:
        send_event(iid, x)
    before_drain()
    run.drain_s = drain(client, list(run.expected), DRAIN_S, workers.respawn_exited)
    return run
