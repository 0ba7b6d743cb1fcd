"""How long the dispatcher leaves the engine's turns to a client starting workflows in a loop
(``LocalStarts.await_starts``), on a time the test moves: no store, no threads, no sleeps."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, cast

import pytest

from treadle.clock import ManualClock
from treadle.runtime import starts as starts_module
from treadle.runtime.engine import Engine
from treadle.runtime.options import RunState, RuntimeOptions
from treadle.runtime.registry import Workflow
from treadle.runtime.starts import LocalStarts
from treadle.store.base import NewInstance

START = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
PATIENCE_S = starts_module._PATIENCE_S
LOOK_S = starts_module._LOOK_S[1]


class _Time:
    """``time.monotonic`` and ``time.sleep`` of the starts module: a sleep moves the time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


class _GroupingStore:
    groups_starts = True


class _Pace:
    """A ``LocalStarts`` whose starts take ``took`` seconds of the fake time each (and may
    run something meanwhile, as the dispatcher would while the start is under way)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, claims_due: bool = False) -> None:
        self.time = _Time()
        monkeypatch.setattr(starts_module, "time", self.time)
        engine = SimpleNamespace(
            store=_GroupingStore(),
            wakeups=SimpleNamespace(claims_due=lambda now: claims_due),
            inflight=SimpleNamespace(renewal_due=lambda now: False),
            remote=None,
        )
        options = RuntimeOptions(
            owner="o", lease_s=30.0, max_concurrent_activities=1, max_concurrent_workflows=1,
            cache_size=1,
        )  # fmt: skip
        self.run = RunState()
        self.starts = LocalStarts(cast(Engine, engine), options, self.run, ManualClock(START))
        self.took = 0.002
        self.meanwhile: list[Any] = []
        monkeypatch.setattr(self.starts, "_start", self._start)

    def _start(self, fn: Workflow, new: NewInstance, registry_generation: int = 0) -> bool:
        self.time.now += self.took
        if self.meanwhile:
            self.meanwhile.pop()()
        return True

    def start(self) -> None:
        assert self.starts.start(cast(Workflow, None), cast(NewInstance, None), 0)

    def dispatcher_waits(self) -> float:
        """How long the dispatcher's ``await_starts`` waited."""
        before = self.time.slept
        self.starts.await_starts()
        return self.time.slept - before


def test_after_a_start_in_a_loop_the_dispatcher_waits_as_long_as_a_start_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pace = _Pace(monkeypatch)
    pace.start()
    assert pace.dispatcher_waits() == 0.0  # one start is no loop
    pace.time.now += pace.took / 4  # the next start comes sooner than a start takes
    pace.start()
    waited = pace.dispatcher_waits()
    assert pace.took <= waited < pace.took + LOOK_S + 1e-9, waited


def test_while_a_start_in_a_loop_is_under_way_the_dispatcher_waits_at_most_its_patience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pace = _Pace(monkeypatch)
    pace.start()
    pace.time.now += pace.took / 4
    waited: list[float] = []
    pace.meanwhile.append(lambda: waited.append(pace.dispatcher_waits()))
    pace.start()
    assert waited and PATIENCE_S <= waited[0] < PATIENCE_S + LOOK_S + 1e-9, waited


def test_the_dispatcher_does_not_wait_for_starts_that_come_slower_than_they_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pace = _Pace(monkeypatch)
    pace.start()
    pace.time.now += pace.took * 2
    pace.start()
    assert pace.dispatcher_waits() == 0.0


@pytest.mark.parametrize("why", ["claims due", "draining"])
def test_the_dispatcher_does_not_wait_for_starts_when_it_has_other_work_or_stops(
    monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    pace = _Pace(monkeypatch, claims_due=why == "claims due")
    pace.start()
    pace.time.now += pace.took / 4
    pace.start()
    pace.run.draining = why == "draining"
    assert pace.dispatcher_waits() == 0.0
