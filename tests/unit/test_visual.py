"""The pure model of a run's pictures (steps, graph, timeline) and its two renderers."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from treadle.core.history import (
    ExecutionCompleted,
    HistoryEvent,
    OrchestrationStatus,
)
from treadle.core.visual import (
    Outcome,
    StepKind,
    build_graph,
    build_timeline,
    fold,
    render_graph_svg,
    render_mermaid,
    render_timeline_svg,
)
from treadle.core.visual.awaiting import awaited_events
from treadle.core.visual.timeline import MAX_GROUP_LANES

from .helpers import (
    at,
    child_completed,
    child_created,
    event_raised,
    start,
    task_completed,
    task_failed,
    task_scheduled,
    timer_created,
    timer_fired,
    turn,
)


def stamped(event: HistoryEvent, seconds: float) -> HistoryEvent:
    return dataclasses.replace(event, timestamp=at(seconds))


def fan_out_history(n: int, *, failed: int = 0) -> list[HistoryEvent]:
    """A fan-out of ``n`` activities ``work`` (the last ``failed`` fail), then ``sum``."""
    history: list[HistoryEvent] = [*start("fan")]
    history += [stamped(task_scheduled(i, "work", i), 0) for i in range(n)]
    history.append(turn(at(1)))
    for i in range(n):
        done = task_failed(i) if i >= n - failed else task_completed(i, i)
        history.append(stamped(done, 0.5 + i / (2 * n)))
    history.append(stamped(task_scheduled(n, "sum"), 1))
    history += [turn(at(3)), stamped(task_completed(n, 1), 3)]
    history.append(stamped(ExecutionCompleted(status=OrchestrationStatus.COMPLETED), 3))
    return history


def retried_history() -> list[HistoryEvent]:
    """``charge`` fails twice, waiting 2 s between attempts, then succeeds."""
    return [
        *start("pay"),
        stamped(task_scheduled(0, "charge"), 0),
        turn(at(1)),
        stamped(task_failed(0, "card declined"), 1),
        stamped(timer_created(1, at(3)), 1),
        turn(at(3)),
        stamped(timer_fired(1, at(3)), 3),
        stamped(task_scheduled(2, "charge"), 3),
        turn(at(4)),
        stamped(task_failed(2, "card declined"), 4),
        stamped(timer_created(3, at(6)), 4),
        turn(at(6)),
        stamped(timer_fired(3, at(6)), 6),
        stamped(task_scheduled(4, "charge"), 6),
        turn(at(7)),
        stamped(task_completed(4, "ok"), 7),
    ]


def test_a_scheduled_and_completed_pair_is_one_step_with_its_duration() -> None:
    steps = fold(fan_out_history(3))
    work = [s for s in steps.steps if s.name == "work"]
    assert [s.outcome for s in work] == [Outcome.COMPLETED] * 3
    assert work[0].duration_s() == 0.5
    assert steps.status is OrchestrationStatus.COMPLETED
    assert steps.pending() == []


def test_retries_are_attempts_of_one_step_and_backoff_timers_are_not_steps() -> None:
    steps = fold(retried_history())
    assert [(s.kind, s.name, s.attempts) for s in steps.steps] == [(StepKind.ACTIVITY, "charge", 3)]
    charge = steps.steps[0]
    assert charge.outcome is Outcome.COMPLETED
    assert charge.backoff_s == 4.0
    assert charge.duration_s() == 7.0


def test_folding_a_prefix_gives_the_state_after_that_event() -> None:
    history = retried_history()
    after_first_failure = fold(history, upto=6)  # the first backoff timer is pending
    assert [s.kind for s in after_first_failure.pending()] == [StepKind.TIMER]
    assert [s.outcome for s in after_first_failure.done()] == [Outcome.FAILED]
    assert fold(history, upto=9).pending()[0].attempts == 2


def test_a_fan_out_of_thousands_is_one_node_with_counts() -> None:
    graph = build_graph(fold(fan_out_history(5000, failed=2)))
    assert [len(stage.nodes) for stage in graph.stages] == [1, 1]
    work = graph.stages[0].nodes[0]
    assert (work.count, work.completed, work.failed, work.pending) == (5000, 4998, 2, 0)
    assert work.outcome is Outcome.FAILED
    assert "\u00d75000" in work.label and "4998 ✓ 2 ✗" in work.summary
    svg = render_graph_svg(graph)
    assert svg.count("<rect") == 4  # start, the group, sum, the end: not 5,000 nodes
    ET.fromstring(svg)  # well-formed


def test_timers_children_and_events_are_nodes_of_their_kind() -> None:
    history = [
        *start("order"),
        stamped(child_created(0, "ship", "order:0000"), 0),
        turn(at(2)),
        stamped(child_completed(0, "shipped"), 2),
        stamped(timer_created(1, at(5)), 2),
        turn(at(5)),
        stamped(timer_fired(1, at(5)), 5),
        turn(at(8)),
        stamped(event_raised("approve", True), 8),
    ]
    graph = build_graph(fold(history))
    kinds = [[n.kind for n in stage.nodes] for stage in graph.stages]
    assert kinds == [[StepKind.CHILD], [StepKind.TIMER], [StepKind.EVENT]]
    assert graph.stages[0].nodes[0].child_ids == ["order:0000"]
    svg = render_graph_svg(graph, link=lambda iid: f"/ui/instances/{iid}")
    assert '<a href="/ui/instances/order:0000">' in svg


def test_awaited_events_come_from_replaying_the_code() -> None:
    def approval(ctx: Any, _: Any) -> Generator[Any, Any, Any]:
        yield ctx.call_child_workflow("ship", input=1)
        return (yield ctx.wait_for_external_event("Approve"))

    history = [
        *start("approval"),
        stamped(child_created(1, "ship", "x:0001", 1), 0),
        turn(at(1)),
        stamped(child_completed(1, "ok"), 1),
    ]
    assert awaited_events(approval, history[:3]) == []
    assert awaited_events(approval, history) == ["approve"]
    steps = fold(history)
    steps.awaited_events = ["approve"]
    last = build_graph(steps).stages[-1].nodes[0]
    assert (last.kind, last.name, last.outcome) == (StepKind.EVENT, "approve", Outcome.PENDING)

    def changed(ctx: Any, _: Any) -> Generator[Any, Any, Any]:
        yield ctx.create_timer(timedelta(seconds=1))

    assert awaited_events(changed, history) is None


def test_timeline_lanes_follow_parallel_branches_and_bars_real_durations() -> None:
    small = build_timeline(fold(fan_out_history(3)))
    assert small.lanes == 3  # three parallel activities, then the sum after them
    sum_bar = next(b for b in small.bars if b.label == "sum")
    assert (sum_bar.lane, sum_bar.start_s, sum_bar.end_s) == (0, 1.0, 3.0)
    big = build_timeline(fold(fan_out_history(MAX_GROUP_LANES + 1)))
    assert big.lanes == 1 and big.bars[0].count == MAX_GROUP_LANES + 1
    ET.fromstring(render_timeline_svg(big))


def test_mermaid_shows_the_same_groups_with_outcome_classes() -> None:
    text = render_mermaid(build_graph(fold(fan_out_history(100, failed=1))))
    assert text.startswith("flowchart TD\n")
    assert "work \u00d7100<br/>99 ✓ 1 ✗" in text and ":::failed" in text
    assert 'finish(("COMPLETED")):::completed' in text


def test_names_are_escaped_in_both_renderers() -> None:
    history = [*start('<b>"x"</b>'), stamped(task_scheduled(0, "<script>alert(1)</script>"), 0)]
    graph = build_graph(fold(history))
    svg = render_graph_svg(graph)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    assert "<script>" not in render_mermaid(graph)
