"""Small helpers of the reliability tests: retried client calls, draining, a random seed."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import treadle as wf
from treadle.errors import StoreUnavailableError, WorkflowAlreadyExistsError

from .ledger import ENDED

T = TypeVar("T")
OUTAGE_S = 90.0  # how long a client call keeps retrying through an outage


def seed(name: str) -> random.Random:
    """A random generator seeded from ``$TREADLE_RELIABILITY_SEED`` (printed, to repeat a run)."""
    value = int(os.environ.get("TREADLE_RELIABILITY_SEED", random.randrange(1 << 30)))
    print(f"{name}: seed {value} (set TREADLE_RELIABILITY_SEED to repeat)", flush=True)
    return random.Random(value)


def retried(call: Callable[[], T], what: str) -> tuple[T, int]:
    """Call ``call`` until it does not raise StoreUnavailableError (an outage), for at most
    :data:`OUTAGE_S`; return its value and how many attempts failed."""
    deadline = time.monotonic() + OUTAGE_S
    failures = 0
    while True:
        try:
            return call(), failures
        except StoreUnavailableError:
            failures += 1
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: the store stayed unavailable {OUTAGE_S:.0f} s"
                ) from None
            time.sleep(0.2)


def start(client: wf.WorkflowClient, workflow: str, x: int, iid: str) -> bool:
    """Schedule ``workflow(x)`` as ``iid`` through outages; return True once it is recorded.

    A call that failed may have committed (the caller cannot tell): its retry then finds the
    instance exists, which also means it is recorded.
    """

    def call() -> bool:
        with contextlib.suppress(WorkflowAlreadyExistsError):
            client.schedule_new_workflow(workflow, input=x, instance_id=iid)
        return True

    return retried(call, f"starting {iid}")[0]


def raise_event(client: wf.WorkflowClient, iid: str, name: str, data: object) -> bool:
    """Raise an event through outages; return whether it went through on the first attempt
    (otherwise it may have been delivered twice: the caller could not tell)."""
    _, failures = retried(
        lambda: client.raise_workflow_event(iid, name, data=data), f"raising {name} on {iid}"
    )
    return failures == 0


def unfinished(client: wf.WorkflowClient, ids: Iterable[str]) -> list[str]:
    """The instances among ``ids`` that are not in a terminal state (or cannot be read now)."""
    left = []
    for iid in ids:
        try:
            state = client.get_workflow_state(iid, fetch_payloads=False)
        except StoreUnavailableError:
            left.append(iid)  # cannot tell now: look again next time
            continue
        if state is None or state.runtime_status not in ENDED:
            left.append(iid)
    return left


def drain(
    client: wf.WorkflowClient,
    ids: list[str],
    timeout: float,
    tick: Callable[[], None] = lambda: None,
) -> float:
    """Wait (at most ``timeout``) until every instance of ``ids`` ended; return how long it
    took. ``tick`` runs between looks (a supervisor respawning workers, say). What is left
    unfinished is the checker's ``stuck``."""
    began = time.monotonic()
    left = list(ids)
    while left and time.monotonic() - began < timeout:
        tick()
        left = unfinished(client, left)
        if left:
            time.sleep(0.25)
    return time.monotonic() - began
