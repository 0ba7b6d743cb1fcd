"""History events: the dict form they are stored in, and action records."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.core import codec, history
from treadle.core.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    SendEvent,
    action_to_event,
)
from treadle.core.history import (
    EVENT_TYPES,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    ParentInfo,
    PropagatedChunk,
    Propagation,
    SubOrchestrationInstanceCreated,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TraceContext,
    WorkflowVersion,
    event_from_dict,
    event_to_dict,
    event_to_json,
)
from treadle.errors import FailureDetails

from .helpers import T0

_DATETIMES = st.datetimes(
    min_value=datetime(1970, 1, 2),
    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))]),
)
_FAILURES = st.builds(
    FailureDetails,
    message=st.text(),
    error_type=st.text(min_size=1),
    stack_trace=st.none() | st.text(),
)
_PARENTS = st.builds(
    ParentInfo,
    instance_id=st.text(),
    execution_id=st.text(),
    task_scheduled_id=st.integers(min_value=0, max_value=2**31),
    name=st.text(),
    app_id=st.none() | st.text(),
)
_CHUNK_EVENTS = st.lists(
    st.one_of(
        st.builds(
            TaskScheduled,
            event_id=st.integers(min_value=0, max_value=2**31),
            timestamp=_DATETIMES,
            name=st.text(),
            input=st.none() | st.text(),
        ),
        st.builds(
            ExecutionStarted,
            timestamp=_DATETIMES,
            name=st.text(),
            instance_id=st.text(),
            execution_id=st.text(),
            parent=st.none() | _PARENTS,
        ),
    ),
    max_size=3,
).map(tuple)
_PROPAGATIONS = st.builds(
    Propagation,
    scope=st.sampled_from([1, 2]),
    chunks=st.lists(
        st.builds(
            PropagatedChunk,
            app_id=st.text(min_size=1),
            instance_id=st.text(),
            workflow_name=st.text(),
            events=_CHUNK_EVENTS,
        ),
        max_size=2,
    ).map(tuple),
)
_VERSIONS = st.builds(
    WorkflowVersion,
    name=st.none() | st.text(),
    patches=st.lists(st.text(), max_size=3).map(tuple),
)
_HEX = "0123456789abcdef"
_TRACES = st.builds(
    TraceContext,
    trace_parent=st.builds(
        "00-{}-{}-01".format,
        st.text(_HEX, min_size=32, max_size=32),
        st.text(_HEX, min_size=16, max_size=16),
    ),
    span_id=st.text(_HEX, min_size=16, max_size=16) | st.just(""),
    trace_state=st.none() | st.text(),
)
_BY_TYPE: dict[Any, st.SearchStrategy[Any]] = {
    Propagation: _PROPAGATIONS,
    int: st.integers(min_value=-1, max_value=2**31),
    str: st.text(),
    bool: st.booleans(),
    datetime: _DATETIMES,
    FailureDetails: _FAILURES,
    ParentInfo: _PARENTS,
    TraceContext: _TRACES,
    WorkflowVersion: _VERSIONS,
    OrchestrationStatus: st.sampled_from(OrchestrationStatus),
}


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return st.one_of([_strategy(arg) for arg in typing.get_args(tp)])
    if tp is type(None):
        return st.none()
    return _BY_TYPE[tp]


def events_of(cls: type[HistoryEvent]) -> st.SearchStrategy[HistoryEvent]:
    """Events of one kind with every field (optional ones included) drawn at random."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


def test_every_event_class_is_registered() -> None:
    # A kind missing from EVENT_TYPES could be written to a store but never read back.
    defined = {
        value
        for value in vars(history).values()
        if isinstance(value, type) and issubclass(value, HistoryEvent) and value is not HistoryEvent
    }
    assert len(defined) == 18
    assert set(EVENT_TYPES.values()) == defined
    assert all(kind == cls.KIND for kind, cls in EVENT_TYPES.items())


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
@settings(max_examples=30)
@given(data=st.data())
def test_event_round_trips_through_json(cls: type[HistoryEvent], data: st.DataObject) -> None:
    event = data.draw(events_of(cls))
    as_dict = event_to_dict(event)
    assert as_dict["kind"] == cls.KIND
    # The dict form must survive the store's JSON text, not just a Python round trip.
    back = event_from_dict(codec.loads(codec.dumps(as_dict)))
    assert type(back) is cls
    assert back == event
    # ... and so must the text the stores write
    assert event_from_dict(codec.loads(event_to_json(event))) == event


def test_to_dict_is_plain_json_and_omits_none() -> None:
    event = TaskFailed(
        event_id=-1,
        timestamp=T0,
        task_scheduled_id=3,
        failure=FailureDetails(message="m", error_type="ValueError"),
    )
    assert event_to_dict(event) == {
        "kind": "TaskFailed",
        "event_id": -1,
        "timestamp": "2024-01-01T12:00:00+00:00",
        "task_scheduled_id": 3,
        "failure": {"message": "m", "error_type": "ValueError", "stack_trace": None},
        "task_execution_id": "",
    }
    assert "input" not in event_to_dict(TaskScheduled(event_id=1, name="a"))


def test_status_is_stored_by_name() -> None:
    event = ExecutionCompleted(status=OrchestrationStatus.CONTINUED_AS_NEW)
    assert event_to_dict(event)["status"] == "CONTINUED_AS_NEW"


@pytest.mark.parametrize("kind", ["Nope", "taskscheduled", None, 3, ""])
def test_unknown_kind_is_a_value_error(kind: Any) -> None:
    with pytest.raises(ValueError, match="unknown history event kind"):
        event_from_dict({"kind": kind, "event_id": 1})


def test_missing_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown history event kind"):
        event_from_dict({"event_id": 1})


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "TaskScheduled", "event_id": 1},  # name missing
        {"kind": "TaskScheduled", "event_id": 1, "name": "a", "color": "red"},
        {"kind": "ExecutionCompleted", "status": "BOGUS"},
        {"kind": "TaskFailed", "task_scheduled_id": 1, "failure": {"msg": "x"}},
        {"kind": "TaskFailed", "task_scheduled_id": 1, "failure": "boom"},
        {"kind": "TimerFired", "timer_id": 1, "fire_at": "tomorrow"},
        {
            "kind": "ExecutionStarted",
            "name": "w",
            "instance_id": "i",
            "execution_id": "e",
            "parent": {"instance_id": "p"},
        },
    ],
)
def test_bad_fields_are_a_value_error(data: dict[str, Any]) -> None:
    # Stores and the gRPC edge catch ValueError only; a KeyError or TypeError would escape.
    with pytest.raises(ValueError, match=f"bad fields for history event {data['kind']}"):
        event_from_dict(data)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            ScheduleTask(id=1, name="a", input='"x"', task_execution_id="e:1"),
            TaskScheduled(event_id=1, timestamp=T0, name="a", input='"x"', task_execution_id="e:1"),
        ),
        (CreateTimer(id=2, fire_at=T0), TimerCreated(event_id=2, timestamp=T0, fire_at=T0)),
        (
            CreateSubOrchestration(id=3, name="child", instance_id="o-1:0003", input="1"),
            SubOrchestrationInstanceCreated(
                event_id=3, timestamp=T0, name="child", instance_id="o-1:0003", input="1"
            ),
        ),
        (
            SendEvent(id=4, instance_id="other", name="ping", input="{}"),
            EventSent(event_id=4, timestamp=T0, instance_id="other", name="ping", input="{}"),
        ),
    ],
)
def test_action_becomes_its_history_record(action: Any, expected: HistoryEvent) -> None:
    assert action_to_event(action, T0) == expected


def test_completion_has_no_history_record() -> None:
    completion = CompleteOrchestration(id=1, status=OrchestrationStatus.COMPLETED)
    assert action_to_event(completion) is None


def test_terminal_statuses() -> None:
    terminal = {s for s in OrchestrationStatus if s.is_terminal}
    assert terminal == {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
        OrchestrationStatus.CANCELED,
    }


def _stored_text_by_suffixes(event: HistoryEvent) -> str:
    """The stored text as first defined: the one-pass JSON with each unset trailing field
    (version, propagated, propagation_scope, app_id, timeout_at, timed_out, trace) cut off its
    end,
    one at a time."""
    if isinstance(event, ExecutionStarted) and event.propagated is not None:
        return codec.dumps(event_to_dict(event))
    body = orjson.dumps(event).decode()
    unset = (
        ',"version":null}',
        ',"propagated":null}',
        ',"propagation_scope":0}',
        ',"app_id":null}',
        ',"timeout_at":null}',
        ',"timed_out":false}',
        ',"trace":null}',
    )
    trimmed = True
    while trimmed:
        trimmed = False
        for suffix in unset:
            if body.endswith(suffix):
                body = body[: -len(suffix)] + "}"
                trimmed = True
    return f'{{"kind":"{event.KIND}",{body[1:]}'


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
@settings(max_examples=30)
@given(data=st.data())
def test_stored_text_leaves_out_unset_trailing_fields(
    cls: type[HistoryEvent], data: st.DataObject
) -> None:
    # the stored text of an event is byte for byte what it always was: events that do not
    # use the fields added last are stored as before those fields existed
    event = data.draw(events_of(cls))
    assert event_to_json(event) == _stored_text_by_suffixes(event)
    trailing: dict[str, Any] = {
        "version": None,
        "propagated": None,
        "propagation_scope": 0,
        "app_id": None,
        "timeout_at": None,
        "timed_out": False,
        "trace": None,
    }
    unset = dataclasses.replace(
        event, **{name: value for name, value in trailing.items() if hasattr(event, name)}
    )
    text = event_to_json(unset)
    assert text == _stored_text_by_suffixes(unset)
    assert not set(trailing) & set(codec.loads(text))
