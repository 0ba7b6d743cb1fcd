"""The graph of a run: its steps in order, parallel ones side by side, large fan-outs as one
group with counts.

Steps begun in the same turn run in parallel (a fan-out; the next stage is its fan-in). A
stage shows one :class:`Node` per kind and name: a fan-out of 10,000 activities of one name
is one node saying 10,000, with how many completed, failed and are pending, however many
steps there are. Pure; both renderers (:mod:`~treadle.core.visual.svg` and
:mod:`~treadle.core.visual.mermaid`) draw this.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime

from treadle.core.history import OrchestrationStatus
from treadle.core.records import record_class
from treadle.core.visual.steps import Outcome, Step, StepKind, Steps

__all__ = ["Graph", "Node", "Stage", "build_graph", "format_duration"]

TIMES = "\u00d7"
"""The multiplication sign in group labels (``charge \u00d7100``)."""

MAX_CHILD_LINKS = 5
"""A group of child workflows links to at most this many of them."""


@record_class(frozen=False)
class Node:
    """One step, or a group of steps of one kind and name begun together.

    Attributes:
        kind: what the steps are.
        name: their name ("" for timers).
        count: how many steps.
        completed: how many completed.
        failed: how many failed.
        pending: how many are still awaited.
        retried: how many needed more than one attempt.
        max_attempts: the most attempts any of them took.
        longest_s: the longest duration among them (to ``now`` for pending ones).
        child_ids: for child workflows, the first few instance ids.
        first_event_id: the event id that scheduled the first of them (-1 if none).
    """

    kind: StepKind
    name: str
    count: int = 0
    completed: int = 0
    failed: int = 0
    pending: int = 0
    retried: int = 0
    max_attempts: int = 1
    longest_s: float | None = None
    child_ids: list[str] = field(default_factory=list)
    first_event_id: int = -1

    @property
    def outcome(self) -> Outcome:
        """Failed if any failed, else pending if any is pending, else completed."""
        if self.failed:
            return Outcome.FAILED
        return Outcome.PENDING if self.pending else Outcome.COMPLETED

    @property
    def label(self) -> str:
        """The node's title: the name (with ``\u00d7count`` for a group) and what it is."""
        title = {
            StepKind.ACTIVITY: self.name,
            StepKind.TIMER: "timer",
            StepKind.CHILD: f"child: {self.name}",
            StepKind.EVENT: f"event: {self.name}",
            StepKind.SENT: f"sent: {self.name}",
        }[self.kind]
        return f"{title} {TIMES}{self.count}" if self.count > 1 else title

    @property
    def summary(self) -> str:
        """Counts and retries in a few words (``3 ✓ 1 ✗ · retried 2``)."""
        parts = []
        if self.count > 1 or self.failed or self.pending:
            counts = [
                f"{n} {mark}"
                for n, mark in ((self.completed, "✓"), (self.failed, "✗"), (self.pending, "…"))
                if n
            ]
            parts.append(" ".join(counts))
        if self.retried:
            who = f"{self.retried} retried, " if self.count > 1 else ""
            parts.append(f"{who}{self.max_attempts} attempts")
        if self.longest_s is not None and self.kind is not StepKind.EVENT:
            parts.append(format_duration(self.longest_s))
        return " · ".join(parts)

    def add(self, step: Step, now: datetime | None) -> None:
        """Count ``step`` in this node."""
        self.count += 1
        if step.outcome is Outcome.COMPLETED:
            self.completed += 1
        elif step.outcome is Outcome.FAILED:
            self.failed += 1
        else:
            self.pending += 1
        if step.attempts > 1:
            self.retried += 1
            self.max_attempts = max(self.max_attempts, step.attempts)
        duration = step.duration_s(now)
        if duration is not None:
            self.longest_s = max(self.longest_s or 0.0, duration)
        if step.child_instance_id and len(self.child_ids) < MAX_CHILD_LINKS:
            self.child_ids.append(step.child_instance_id)
        if self.first_event_id < 0:
            self.first_event_id = step.event_id


@record_class(frozen=False)
class Stage:
    """Steps begun together: one node when alone, several side by side when parallel.

    Attributes:
        nodes: the groups, in the order their first step began.
        steps: how many steps the stage holds.
    """

    nodes: list[Node]
    steps: int


@record_class(frozen=False)
class Graph:
    """A run from start to end as stages.

    Attributes:
        name: the workflow's name.
        status: the run's status.
        stages: the stages in order.
        failure: the run's error, if it failed.
    """

    name: str
    status: OrchestrationStatus
    stages: list[Stage]
    failure: str | None = None


def build_graph(steps: Steps, *, now: datetime | None = None) -> Graph:
    """Group ``steps`` into stages of parallel nodes.

    Args:
        steps: the run, from :func:`~treadle.core.visual.steps.fold`.
        now: the time pending steps' durations run to (None: leave them unknown).
    """
    stages: list[Stage] = []
    current: dict[tuple[StepKind, str], Node] = {}
    count = 0
    turn = None
    for step in steps.steps:
        # Received events are stages of their own: the run waited on them.
        key_turn = (step.turn, step.kind is StepKind.EVENT, step.position)
        group_turn = key_turn[:2] if step.kind is not StepKind.EVENT else key_turn
        if group_turn != turn:
            if current:
                stages.append(Stage(list(current.values()), count))
            current, count, turn = {}, 0, group_turn
        key = (step.kind, step.name)
        node = current.get(key)
        if node is None:
            node = current[key] = Node(step.kind, step.name)
        node.add(step, now)
        count += 1
    if current:
        stages.append(Stage(list(current.values()), count))
    if steps.awaited_events and not steps.status.is_terminal:
        awaited = [Node(StepKind.EVENT, name, 1, pending=1) for name in steps.awaited_events]
        stages.append(Stage(awaited, len(awaited)))
    return Graph(steps.name, steps.status, stages, steps.failure)


def format_duration(value: float) -> str:
    """A duration for people: ``850 ms``, ``2.5 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.3g} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"
