"""What the dashboard's pages show, computed from an instance's record and history.

Plain functions from values to values (no I/O): the handlers in :mod:`.pages` read through
the client's operations and pass the results here; the templates only lay them out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from treadle.core.history import HistoryEvent, TaskScheduled, event_to_dict
from treadle.core.records import record_class
from treadle.core.visual import Step, StepKind, Steps, format_duration

__all__ = [
    "PAGE_SIZE",
    "EventRow",
    "Paging",
    "StepRow",
    "WaitingItem",
    "as_json_download",
    "event_rows",
    "pretty_json",
    "rerun_points",
    "show_time",
    "step_row",
    "step_rows",
    "waiting_items",
]

PAGE_SIZE = 200
"""History rows per page: a history of 10,000 events opens at once, a page at a time."""
DETAIL_CHARS = 300
"""Payloads in history rows are cut to this many characters (the JSON download has all)."""


@record_class
class Paging:
    """One page of rows.

    Attributes:
        page: this page, from 0.
        pages: how many pages.
        total: how many rows in all.
        start: the index of this page's first row.
    """

    page: int
    pages: int
    total: int
    start: int

    @classmethod
    def of(cls, total: int, page: int) -> Paging:
        """Page ``page`` (clamped to the pages there are) of ``total`` rows."""
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(0, page), pages - 1)
        return cls(page, pages, total, page * PAGE_SIZE)

    @property
    def stop(self) -> int:
        """The index after this page's last row."""
        return min(self.total, self.start + PAGE_SIZE)


@record_class
class StepRow:
    """A row of the compact history: one step, its scheduling and its result together."""

    kind: str
    name: str
    event_id: int
    started: str
    ended: str
    duration: str
    attempts: int
    outcome: str
    detail: str
    child_instance_id: str | None


@record_class
class EventRow:
    """A row of the full history: one event."""

    index: int
    event_id: int
    time: str
    kind: str
    name: str
    detail: str


@record_class
class WaitingItem:
    """Something an unfinished instance waits for."""

    kind: str
    text: str
    since: str
    child_instance_id: str | None = None


def show_time(moment: datetime | None) -> str:
    """A time for people: UTC, to the millisecond (empty for None)."""
    if moment is None:
        return ""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] + "Z"


def pretty_json(text: str | None) -> str:
    """JSON text indented for reading (as given if it does not parse; empty for None)."""
    if text is None:
        return ""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


def step_rows(steps: Steps, paging: Paging, now: datetime) -> list[StepRow]:
    """The compact history's rows of one page."""
    return [step_row(step, now) for step in steps.steps[paging.start : paging.stop]]


def step_row(step: Step, now: datetime) -> StepRow:
    """One step as a row of the compact history (durations of pending steps run to ``now``)."""
    duration = step.duration_s(now)
    return StepRow(
        kind=step.kind.value,
        name=step.name or (f"fires {show_time(step.fire_at)}" if step.fire_at else ""),
        event_id=step.event_id,
        started=show_time(step.started_at),
        ended=show_time(step.ended_at),
        duration="" if duration is None else format_duration(duration),
        attempts=step.attempts,
        outcome=step.outcome.value,
        detail=_cut(step.detail or ""),
        child_instance_id=step.child_instance_id,
    )


def event_rows(history: list[HistoryEvent], paging: Paging) -> list[EventRow]:
    """The full history's rows of one page."""
    rows = []
    for index in range(paging.start, paging.stop):
        event = history[index]
        data = event_to_dict(event)
        name = str(data.pop("name", "") or "")
        for key in ("kind", "timestamp", "event_id"):
            data.pop(key, None)
        detail = orjson.dumps(data).decode() if data else ""
        when = show_time(event.timestamp)
        rows.append(EventRow(index, event.event_id, when, event.KIND, name, _cut(detail)))
    return rows


def waiting_items(
    steps: Steps, now: datetime, awaited_events: list[str] | None
) -> list[WaitingItem]:
    """What an unfinished instance waits for: pending activities (for how long, which
    attempt), timers (when they fire), children, and the events its code awaits."""
    items = []
    for step in steps.pending():
        waited = format_duration(step.duration_s(now) or 0.0)
        if step.kind is StepKind.ACTIVITY:
            attempt = f", attempt {step.attempts}" if step.attempts > 1 else ""
            text = f"activity {step.name} (running for {waited}{attempt})"
        elif step.kind is StepKind.TIMER:
            left = (step.fire_at - now).total_seconds() if step.fire_at else 0.0
            when = f"in {format_duration(left)}" if left > 0 else "due now"
            text = f"timer firing at {show_time(step.fire_at)} ({when})"
        else:
            text = f"child workflow {step.name} (for {waited})"
        items.append(
            WaitingItem(step.kind.value, text, show_time(step.started_at), step.child_instance_id)
        )
    items.extend(
        WaitingItem("event", f"external event {name!r}", "") for name in awaited_events or ()
    )
    return items


def rerun_points(history: list[HistoryEvent]) -> list[tuple[int, str]]:
    """The events a rerun may start from: 0 (the whole workflow) and every activity's
    scheduling, as (event id, label)."""
    points = [(0, "0: the whole workflow")]
    seen: set[int] = set()
    for event in history:
        if isinstance(event, TaskScheduled) and event.event_id not in seen:
            seen.add(event.event_id)
            points.append((event.event_id, f"{event.event_id}: {event.name}"))
    return points


def _cut(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def as_json_download(history: list[HistoryEvent]) -> bytes:
    """The history as indented JSON, for the download link."""
    dicts: list[Any] = [event_to_dict(e) for e in history]
    return orjson.dumps(dicts, option=orjson.OPT_INDENT_2)
