"""History events: the append-only record of a workflow instance's progress.

The kinds and fields mirror the durabletask ``HistoryEvent`` messages, so that local replay
and the official SDKs (through ``treadle serve``) see the same history. Payloads (inputs,
results, event data) are JSON text, kept exactly as received.

Correlation rules:
- ``TaskScheduled``, ``TimerCreated``, ``SubOrchestrationInstanceCreated`` and ``EventSent``
  take the action's sequence id as their ``event_id``;
- ``TaskCompleted``/``TaskFailed`` and ``SubOrchestrationInstanceCompleted``/``Failed`` point
  back with ``task_scheduled_id``, ``TimerFired`` with ``timer_id``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson

from treadle.core.records import generated_function, record_class
from treadle.errors import FailureDetails

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class OrchestrationStatus(enum.Enum):
    """Runtime status of an instance (the durabletask names, values as in its protobuf)."""

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    PENDING = 6
    SUSPENDED = 7
    STALLED = 8

    is_terminal: bool
    """Whether an instance in this status has finished for good (set on each member below:
    a plain attribute, read several times a turn, where a property would be a call)."""


_TERMINAL = frozenset(
    {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
        OrchestrationStatus.CANCELED,
    }
)
for _status in OrchestrationStatus:
    _status.is_terminal = _status in _TERMINAL
del _status


@record_class
class ParentInfo:
    """The parent of a child workflow instance.

    Attributes:
        instance_id: the parent's instance id.
        execution_id: the parent's execution id at the time the child was created.
        task_scheduled_id: the parent's sequence id for the child call.
        name: the parent's workflow name.
        app_id: the parent's app (durabletask's ``ParentInstanceInfo.appID``), if it has one.
    """

    instance_id: str
    execution_id: str
    task_scheduled_id: int
    name: str = ""
    app_id: str | None = None


@record_class
class TraceContext:
    """A run's W3C trace context, as recorded in its ``ExecutionStarted`` (durabletask's
    ``parentTraceContext`` and ``workflowSpanID``), so that its spans form one trace across
    turns, workers and restarts.

    Attributes:
        trace_parent: the W3C ``traceparent`` of the run span's parent (the client's
            ``create_orchestration`` span, the parent workflow's run span, or an SDK
            client's context). A run with no parent records its own span here: its
            parent-id is ``span_id``.
        span_id: the run span's id (16 hex digits), chosen when the run's first turn is
            committed; "" until then.
        trace_state: the W3C ``tracestate`` that came with ``trace_parent``, if any.
    """

    trace_parent: str
    span_id: str = ""
    trace_state: str | None = None

    @property
    def trace_id(self) -> str:
        """The trace id (32 hex digits) of ``trace_parent``."""
        return self.trace_parent[3:35]

    @property
    def parent_span_id(self) -> str:
        """The parent-id (16 hex digits) of ``trace_parent``."""
        return self.trace_parent[36:52]

    @property
    def is_root(self) -> bool:
        """Whether the run span has no parent (see ``trace_parent``)."""
        return self.parent_span_id == self.span_id

    def run_parent(self) -> str:
        """The W3C ``traceparent`` of the run span itself (the parent of its activities,
        timers and children)."""
        return f"{self.trace_parent[:36]}{self.span_id}{self.trace_parent[52:]}"


def valid_traceparent(text: str) -> bool:
    """Whether ``text`` is a version-00 W3C ``traceparent`` with non-zero ids."""
    if len(text) != 55 or text[:3] != "00-" or text[35] != "-" or text[52] != "-":
        return False
    trace_id, span_id, flags = text[3:35], text[36:52], text[53:]
    try:
        int(flags, 16)
        return int(trace_id, 16) != 0 and int(span_id, 16) != 0 and text.islower()
    except ValueError:
        return False


@record_class
class PropagatedChunk:
    """One workflow's events in a propagated history (see :mod:`treadle.core.propagation`).

    Attributes:
        app_id: the app the workflow ran in.
        instance_id: the workflow instance.
        workflow_name: its workflow's name.
        events: its history events up to the call that propagated them, oldest first.
    """

    app_id: str
    instance_id: str
    workflow_name: str
    events: tuple[HistoryEvent, ...]


@record_class
class Propagation:
    """A history propagated to a child workflow or an activity, as stored.

    Attributes:
        scope: how it was produced (a :class:`~treadle.core.propagation.PropagationScope`
            value: 1 the caller's own events, 2 with its ancestors' too).
        chunks: one per workflow, the oldest ancestor first, the caller last.
    """

    scope: int
    chunks: tuple[PropagatedChunk, ...]


@record_class
class WorkflowVersion:
    """The version a workflow turn ran, recorded in its ``OrchestratorStarted`` (durabletask's
    ``WorkflowVersion``, where daprd records what the worker reports).

    Attributes:
        name: the version of a versioned workflow (``register_versioned_workflow``), if the
            workflow is one.
        patches: the patches (``ctx.is_patched``) first found true in that turn, in the order
            the code evaluated them; the instance's patches are those of all its turns.
    """

    name: str | None = None
    patches: tuple[str, ...] = ()


@record_class(kw_only=True)
class HistoryEvent:
    """Base of every history event.

    Attributes:
        event_id: the action's sequence id for action events, -1 otherwise.
        timestamp: when the event was recorded (UTC).
    """

    KIND: ClassVar[str] = ""
    event_id: int = -1
    timestamp: datetime = EPOCH


@record_class(kw_only=True)
class OrchestratorStarted(HistoryEvent):
    """A new turn of the workflow began; its timestamp is the workflow clock.

    Attributes:
        version: the workflow version and the new patches of the turn, recorded once the turn
            has run (None: an unversioned workflow that found no new patch).
    """

    KIND: ClassVar[str] = "OrchestratorStarted"
    version: WorkflowVersion | None = None


@record_class(kw_only=True)
class OrchestratorCompleted(HistoryEvent):
    """A turn of the workflow ended."""

    KIND: ClassVar[str] = "OrchestratorCompleted"


@record_class(kw_only=True)
class ExecutionStarted(HistoryEvent):
    """An execution of the workflow started (first event of every run).

    Attributes:
        app_id: the app the instance runs in (the target of durabletask's router on this
            event; the source is the parent's app, or this one), if it has one.
    """

    KIND: ClassVar[str] = "ExecutionStarted"
    name: str
    instance_id: str
    execution_id: str
    input: str | None = None
    parent: ParentInfo | None = None
    scheduled_start: datetime | None = None
    propagated: Propagation | None = None
    """The history its caller propagated to this run (``call_child_workflow(...,
    propagation=...)``, or the run before it continued as new), if any."""
    app_id: str | None = None
    timeout_at: datetime | None = None
    """When the run fails with a TimeoutError if it has not finished by then, if ever
    (``schedule_new_workflow(..., timeout=)``, ``call_child_workflow(..., timeout=)``)."""
    trace: TraceContext | None = None
    """The run's trace context, if it was traced (see :class:`TraceContext`); replay does
    not read it."""


def run_timeout_failure(name: str, timeout_at: datetime | None) -> FailureDetails:
    """Why a run that ran past its timeout failed."""
    when = "its deadline" if timeout_at is None else timeout_at.isoformat()
    return FailureDetails(
        f"workflow {name!r} did not finish by {when} (its timeout); its running activities "
        "were told to stop. Give it a longer timeout, or look at what it waited for",
        "TimeoutError",
    )


@record_class(kw_only=True)
class ExecutionCompleted(HistoryEvent):
    """The execution finished: completed, failed or continued as new."""

    KIND: ClassVar[str] = "ExecutionCompleted"
    status: OrchestrationStatus
    result: str | None = None
    failure: FailureDetails | None = None


@record_class(kw_only=True)
class ExecutionTerminated(HistoryEvent):
    """Someone asked to terminate the instance."""

    KIND: ClassVar[str] = "ExecutionTerminated"
    input: str | None = None
    recurse: bool = True
    timed_out: bool = False
    """The run's timeout passed (see ``ExecutionStarted.timeout_at``): it ends FAILED with
    a TimeoutError, not TERMINATED."""


@record_class(kw_only=True)
class ExecutionSuspended(HistoryEvent):
    """Someone asked to suspend (pause) the instance."""

    KIND: ClassVar[str] = "ExecutionSuspended"
    input: str | None = None


@record_class(kw_only=True)
class ExecutionResumed(HistoryEvent):
    """Someone asked to resume a suspended instance."""

    KIND: ClassVar[str] = "ExecutionResumed"
    input: str | None = None


@record_class(kw_only=True)
class TaskScheduled(HistoryEvent):
    """The workflow scheduled an activity (event_id = the action's sequence id).

    Attributes:
        app_id: the app asked to run it (``call_activity(app_id=...)``); None: the
            instance's own app.
    """

    KIND: ClassVar[str] = "TaskScheduled"
    name: str
    input: str | None = None
    task_execution_id: str = ""
    propagation_scope: int = 0
    """The history propagation asked for with the call (0: none; see
    :class:`~treadle.core.propagation.PropagationScope`)."""
    app_id: str | None = None


@record_class(kw_only=True)
class TaskCompleted(HistoryEvent):
    """An activity returned."""

    KIND: ClassVar[str] = "TaskCompleted"
    task_scheduled_id: int
    result: str | None = None
    task_execution_id: str = ""


@record_class(kw_only=True)
class TaskFailed(HistoryEvent):
    """An activity raised."""

    KIND: ClassVar[str] = "TaskFailed"
    task_scheduled_id: int
    failure: FailureDetails
    task_execution_id: str = ""


@record_class(kw_only=True)
class TimerCreated(HistoryEvent):
    """The workflow created a durable timer (event_id = the action's sequence id)."""

    KIND: ClassVar[str] = "TimerCreated"
    fire_at: datetime


@record_class(kw_only=True)
class TimerFired(HistoryEvent):
    """A durable timer fired."""

    KIND: ClassVar[str] = "TimerFired"
    timer_id: int
    fire_at: datetime


@record_class(kw_only=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    """The workflow started a child workflow (event_id = the action's sequence id).

    Attributes:
        app_id: the app asked to run the child (``call_child_workflow(app_id=...)``); None:
            the parent's own app.
    """

    KIND: ClassVar[str] = "SubOrchestrationInstanceCreated"
    name: str
    instance_id: str
    input: str | None = None
    propagation_scope: int = 0
    """The history propagation asked for with the call (0: none)."""
    app_id: str | None = None


@record_class(kw_only=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    """A child workflow completed."""

    KIND: ClassVar[str] = "SubOrchestrationInstanceCompleted"
    task_scheduled_id: int
    result: str | None = None


@record_class(kw_only=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    """A child workflow failed (or was terminated)."""

    KIND: ClassVar[str] = "SubOrchestrationInstanceFailed"
    task_scheduled_id: int
    failure: FailureDetails


@record_class(kw_only=True)
class EventRaised(HistoryEvent):
    """An external event reached the instance."""

    KIND: ClassVar[str] = "EventRaised"
    name: str
    input: str | None = None


@record_class(kw_only=True)
class EventSent(HistoryEvent):
    """The workflow sent an event to another instance."""

    KIND: ClassVar[str] = "EventSent"
    instance_id: str
    name: str
    input: str | None = None


@record_class(kw_only=True)
class ExecutionStalled(HistoryEvent):
    """The instance cannot make progress (for example, non-determinism)."""

    KIND: ClassVar[str] = "ExecutionStalled"
    reason: str = ""
    description: str = ""


EVENT_TYPES: dict[str, type[HistoryEvent]] = {
    cls.KIND: cls
    for cls in (
        OrchestratorStarted,
        OrchestratorCompleted,
        ExecutionStarted,
        ExecutionCompleted,
        ExecutionTerminated,
        ExecutionSuspended,
        ExecutionResumed,
        TaskScheduled,
        TaskCompleted,
        TaskFailed,
        TimerCreated,
        TimerFired,
        SubOrchestrationInstanceCreated,
        SubOrchestrationInstanceCompleted,
        SubOrchestrationInstanceFailed,
        EventRaised,
        EventSent,
        ExecutionStalled,
    )
}
_FIELDS: dict[type[HistoryEvent], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in EVENT_TYPES.values()
}
_DATETIME_FIELDS = frozenset({"timestamp", "fire_at", "scheduled_start", "timeout_at"})
# Fields added last to their events, left out of the stored text when unset, so that events
# which do not use them are stored as they were before the fields existed (a field added
# later goes at the end of its event and here), each with its unset value.
_UNSET_LAST_FIELDS: dict[str, object] = {
    "version": None,
    "propagated": None,
    "propagation_scope": 0,
    "app_id": None,
    "timeout_at": None,
    "timed_out": False,
    "trace": None,
}


def _trailing_unset(cls: type[HistoryEvent]) -> list[str]:
    """The fields at the end of ``cls`` that are left out when unset (see
    ``_UNSET_LAST_FIELDS``), in the class's order."""
    names = _FIELDS[cls]
    start = len(names)
    while start and names[start - 1] in _UNSET_LAST_FIELDS:
        start -= 1
    return list(names[start:])


def _json_encoder(cls: type[HistoryEvent]) -> Callable[[HistoryEvent], str]:
    """The function that writes an event of ``cls`` as :func:`event_to_json` stores it.

    Generated once per class, as :mod:`dataclasses` generates its methods: a dict display of
    the event's fields (``kind`` first), the trailing fields kept up to the last one set,
    handed to ``orjson``. orjson writes a dict of the same values as it writes the dataclass
    itself (the same keys in the same order, nested dataclasses, enums by value, datetimes as
    RFC 3339), at about half the cost: it reads a dataclass's fields one by one by name.
    """
    fields = _FIELDS[cls]
    trailing = _trailing_unset(cls)
    fixed = fields[: len(fields) - len(trailing)]
    namespace: dict[str, Any] = {"_dumps": orjson.dumps}
    items = ", ".join([repr("kind") + ": " + repr(cls.KIND)] + [f"{n!r}: e.{n}" for n in fixed])
    lines = ["def encode(e):", f"    d = {{{items}}}"]
    for i, name in enumerate(trailing):
        namespace[f"u{i}"] = _UNSET_LAST_FIELDS[name]
        lines.append(f"    v{i} = e.{name}")
    # keep the first k trailing fields when the k-th is set (a later one set keeps the
    # earlier ones, unset or not, as the stored text always had them)
    for k in range(len(trailing), 0, -1):
        i = k - 1
        unset = f"(v{i} is u{i} or (type(v{i}) is type(u{i}) and v{i} == u{i}))"
        lines.append(f"    {'if' if k == len(trailing) else 'elif'} not {unset}:")
        lines.extend(f"        d[{trailing[j]!r}] = v{j}" for j in range(k))
    lines.append("    return _dumps(d).decode()")
    encode: Callable[[HistoryEvent], str] = generated_function(
        "encode", "\n".join(lines), namespace
    )
    encode.__qualname__ = f"event_to_json[{cls.__name__}]"
    return encode


_JSON_ENCODERS = {cls: _json_encoder(cls) for cls in EVENT_TYPES.values()}


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """Turn an event into a JSON-ready dict with a ``kind`` key."""
    out: dict[str, Any] = {"kind": event.KIND}
    for name in _FIELDS[type(event)]:
        value = getattr(event, name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, FailureDetails | ParentInfo | TraceContext):
            value = dataclasses.asdict(value)
        elif isinstance(value, WorkflowVersion):
            value = {"name": value.name, "patches": list(value.patches)}
        elif isinstance(value, OrchestrationStatus):
            value = value.name
        elif isinstance(value, Propagation):
            value = propagation_to_dict(value)
        out[name] = value
    return out


def propagation_to_dict(value: Propagation) -> dict[str, Any]:
    """A propagated history as a JSON-ready dict (its events as :func:`event_to_dict` gives
    them)."""
    return {
        "scope": value.scope,
        "chunks": [
            {
                "app_id": chunk.app_id,
                "instance_id": chunk.instance_id,
                "workflow_name": chunk.workflow_name,
                "events": [event_to_dict(e) for e in chunk.events],
            }
            for chunk in value.chunks
        ],
    }


def propagation_from_dict(data: dict[str, Any]) -> Propagation:
    """Rebuild a propagated history from :func:`propagation_to_dict`'s output.

    Raises:
        ValueError: a chunk or an event is malformed.
    """
    try:
        return Propagation(
            scope=int(data["scope"]),
            chunks=tuple(
                PropagatedChunk(
                    app_id=str(chunk["app_id"]),
                    instance_id=str(chunk["instance_id"]),
                    workflow_name=str(chunk["workflow_name"]),
                    events=tuple(event_from_dict(e) for e in chunk["events"]),
                )
                for chunk in data["chunks"]
            ),
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"bad propagated history: {exc!r}") from exc


def event_to_json(event: HistoryEvent) -> str:
    """JSON text of an event, as stored: :func:`event_to_dict`'s content, encoded in one pass.

    Absent payloads appear as ``null`` and the status as its number; :func:`event_from_dict`
    reads both forms. The fields added last to their events (``_UNSET_LAST_FIELDS``) are left
    out while they and every field after them are unset.
    """
    cls = type(event)  # (one of EVENT_TYPES: the encoders are by class)
    if cls is ExecutionStarted and getattr(event, "propagated", None) is not None:
        # (the events nested in it need their kinds: the one-pass form has none)
        return orjson.dumps(event_to_dict(event)).decode()
    return _JSON_ENCODERS[cls](event)


def event_from_dict(data: dict[str, Any]) -> HistoryEvent:
    """Rebuild an event from :func:`event_to_dict`'s output.

    Raises:
        ValueError: the dict names an unknown kind or carries bad fields.
    """
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown history event kind {kind!r}")
    kwargs: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name == "kind" or value is None:
                continue
            if name in _DATETIME_FIELDS:
                value = datetime.fromisoformat(value)
            elif name == "failure":
                value = FailureDetails(**value)
            elif name == "parent":
                value = ParentInfo(**value)
            elif name == "trace":
                value = TraceContext(**value)
            elif name == "propagated":
                value = propagation_from_dict(value)
            elif name == "version":
                value = _version_from_dict(value)
            elif name == "status":
                value = (
                    OrchestrationStatus(value)
                    if isinstance(value, int)
                    else OrchestrationStatus[value]
                )
            kwargs[name] = value
        return cls(**kwargs)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"bad fields for history event {kind}: {exc!r}") from exc


def _version_from_dict(data: object) -> WorkflowVersion:
    if not isinstance(data, dict):
        raise ValueError(f"a version is an object with a name and patches, not {data!r}")
    patches = data.get("patches") or ()
    name = data.get("name")
    if not isinstance(patches, list | tuple) or not all(isinstance(p, str) for p in patches):
        raise ValueError(f"patches must be a list of strings, not {patches!r}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"a version name is a string, not {name!r}")
    if set(data) - {"name", "patches"}:
        raise ValueError(f"unknown version fields {sorted(set(data) - {'name', 'patches'})}")
    return WorkflowVersion(name=name, patches=tuple(patches))
