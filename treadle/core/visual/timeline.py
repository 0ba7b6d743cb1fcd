"""The timeline of a run: one lane per parallel branch, bars as long as the steps took.

Each step is a bar from when it began to when it ended (to ``now`` while pending). Bars go
to the first lane free at their start, so parallel work spreads over lanes and a sequence
stays in one. A fan-out wider than :data:`MAX_GROUP_LANES` is drawn as one bar per stage
and name (from its first start to its last end, with its count), so ten thousand parallel
activities take one lane, not ten thousand. Pure.
"""

from __future__ import annotations

from datetime import datetime

from treadle.core.records import record_class
from treadle.core.visual.graph import TIMES
from treadle.core.visual.steps import Outcome, Step, StepKind, Steps

__all__ = ["MAX_GROUP_LANES", "Bar", "Timeline", "build_timeline"]

MAX_GROUP_LANES = 12
"""Parallel steps of one name begun together beyond this many are drawn as one bar."""


@record_class
class Bar:
    """A step (or a group of parallel steps) on the timeline.

    Attributes:
        lane: the lane, from 0.
        start_s: seconds from the run's start.
        end_s: seconds from the run's start to its end (or ``now``).
        label: what it is.
        kind: the steps' kind.
        outcome: failed if any failed, else pending if any is pending, else completed.
        count: how many steps the bar stands for.
        attempts: the most attempts among them.
        event_id: the event id that scheduled the (first) step, -1 if none.
    """

    lane: int
    start_s: float
    end_s: float
    label: str
    kind: StepKind
    outcome: Outcome
    count: int = 1
    attempts: int = 1
    event_id: int = -1


@record_class
class Timeline:
    """Bars on lanes over the run's time.

    Attributes:
        total_s: the run's length (to its end, or ``now``).
        lanes: how many lanes.
        bars: the bars, in the order their steps began.
    """

    total_s: float
    lanes: int
    bars: list[Bar]


def build_timeline(steps: Steps, *, now: datetime | None = None) -> Timeline:
    """Lay ``steps`` out on lanes.

    Args:
        steps: the run, from :func:`~treadle.core.visual.steps.fold`.
        now: where pending steps end (None: at the last time the history shows).
    """
    origin = steps.started_at
    if origin is None:
        return Timeline(0.0, 0, [])
    last = max(
        [origin, *(t for s in steps.steps for t in (s.started_at, s.ended_at) if t is not None)]
    )
    end = steps.ended_at or now or last
    groups = _groups(steps.steps)
    lane_free: list[float] = []  # per lane, when its last bar ends
    bars: list[Bar] = []
    for group in groups:
        start = min((s.started_at - origin).total_seconds() for s in group)
        finish = max(((s.ended_at or end) - origin).total_seconds() for s in group)
        finish = max(finish, start)
        lane = next((i for i, free in enumerate(lane_free) if free <= start), len(lane_free))
        if lane == len(lane_free):
            lane_free.append(finish)
        else:
            lane_free[lane] = finish
        bars.append(_bar(group, lane, start, finish))
    total = max([(end - origin).total_seconds(), *(b.end_s for b in bars)])
    return Timeline(total, len(lane_free), bars)


def _groups(steps: list[Step]) -> list[list[Step]]:
    """Each step alone, but parallel steps of one name beyond the limit as one group."""
    by_stage: dict[tuple[int, StepKind, str], list[Step]] = {}
    for step in steps:
        if step.kind is not StepKind.EVENT:
            by_stage.setdefault((step.turn, step.kind, step.name), []).append(step)
    groups: list[list[Step]] = []
    seen: set[tuple[int, StepKind, str]] = set()
    for step in steps:
        key = (step.turn, step.kind, step.name)
        members = by_stage.get(key)
        if members is not None and len(members) > MAX_GROUP_LANES:
            if key not in seen:
                seen.add(key)
                groups.append(members)
        else:
            groups.append([step])
    return groups


def _bar(group: list[Step], lane: int, start: float, finish: float) -> Bar:
    first = group[0]
    if any(s.outcome is Outcome.FAILED for s in group):
        outcome = Outcome.FAILED
    elif any(s.outcome is Outcome.PENDING for s in group):
        outcome = Outcome.PENDING
    else:
        outcome = Outcome.COMPLETED
    label = first.label if len(group) == 1 else f"{first.label} {TIMES}{len(group)}"
    if first.kind is StepKind.CHILD:
        label = f"child: {label}"
    elif first.kind is StepKind.EVENT:
        label = f"event: {label}"
    return Bar(
        lane=lane,
        start_s=start,
        end_s=finish,
        label=label,
        kind=first.kind,
        outcome=outcome,
        count=len(group),
        attempts=max(s.attempts for s in group),
        event_id=first.event_id,
    )
