"""OpenTelemetry traces of one runtime (a worker): a span per run, activity attempt and timer.

Imported only when a runtime is asked for traces (``WorkflowRuntime(tracing=True)`` or
``tracer_provider=...``, ``treadle worker --tracing``); it needs ``opentelemetry-api`` (the
``treadle[otel]`` extra) and a configured ``TracerProvider`` to export anything.

Names and attributes are those of Dapr's durabletask SDKs (``durabletask-go``, which daprd
runs, and ``durabletask-dotnet``)::

    orchestration||NAME   kind SERVER    one per run, from its ExecutionStarted to its end
    activity||NAME        kind SERVER    one per activity attempt, around the function
    timer                 kind INTERNAL  from the timer's creation to the turn it fired in
    create_orchestration||NAME  kind CLIENT  the client's start (treadle.client.tracing)

with ``durabletask.type`` (``orchestration``, ``activity``, ``timer``),
``durabletask.task.name``, ``durabletask.task.instance_id``, ``durabletask.task.task_id``
(activities and timers), ``durabletask.fire_at`` (timers) and ``durabletask.runtime_status``
(runs: ``COMPLETED``, ``FAILED``, ``TERMINATED``, ``CONTINUED_AS_NEW``). A failed run or
attempt has status ERROR with the error's message, and an ``exception`` event with its type.

The trace lives in history, as durabletask-go keeps it: a run's ``ExecutionStarted`` records
its parent's ``traceparent`` and the run span's id (:class:`~treadle.core.history.TraceContext`,
written with the run's first turn), and the run span is emitted once, when the run ends, with
that id and the start time its history records. So the run span is one span however many
turns, workers and restarts the run took, and its activities, timers and children (whose
``ExecutionStarted`` names it as parent) hang under it. Replay never reads the trace context:
ids are chosen outside the workflow's code, when an event is first committed.

A root run's sampling is decided when its trace context is made (by the SDK tracer's
sampler), and recorded in its ``traceparent`` flags, so its activities and timers, emitted
before it, follow the decision its run span gets at the end.

Fixing the run span's id needs the OpenTelemetry SDK's tracer (its ``id_generator``): with
another implementation the run span gets an id of its own and its children point at the one
in history. A run started while tracing was off stays untraced.

With the SDK's tracer, :mod:`treadle.runtime.tracing_spans` records the spans (the same data,
for a third of the SDK's per-span cost); the tracer's ``start_span`` otherwise.

Threads: :meth:`Tracing.stamp` and :meth:`Tracing.committed` run on the thread that holds the
engine lock; :meth:`Tracing.activity_started` on activity threads. The runs known here are a
dict under a lock; a run not known (started by another worker, or before a restart) is read
from its stored history once.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from types import MemberDescriptorType
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    TaskFailed,
    TimerCreated,
    TimerFired,
    TraceContext,
    valid_traceparent,
)
from treadle.errors import FailureDetails
from treadle.runtime.span_status import fail_span
from treadle.store.base import ActivityWorkItem, CommitOutcome, TurnCommit

__all__ = ["ActivityAttempt", "RunningAttempt", "Tracing", "span_context"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_RUNS = 10_000
"""How many runs' trace contexts a runtime keeps (the least recently used go first)."""

_ENDS_RUN = (
    OrchestrationStatus.COMPLETED,
    OrchestrationStatus.FAILED,
    OrchestrationStatus.TERMINATED,
    OrchestrationStatus.CANCELED,
)
"""The statuses a commit ends its run with (one that continues as new resets its history
instead); a tuple: ``in`` compares them by identity, without hashing an enum in Python."""


def span_context(trace_parent: str, trace_state: str | None = None) -> SpanContext:
    """The remote span context of a W3C ``traceparent`` (and ``tracestate``)."""
    state = TraceState.from_header([trace_state]) if trace_state else None
    return SpanContext(
        trace_id=int(trace_parent[3:35], 16),
        span_id=int(trace_parent[36:52], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(trace_parent[53:55], 16)),
        trace_state=state,
    )


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1e9)


class _ChosenIds:
    """The SDK tracer's id generator, made to return the ids of a run span kept in history
    (durabletask-go sets them on the span; Python's SDK takes them from its generator)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._local = threading.local()

    def choose(self, trace_id: int, span_id: int) -> None:
        """Make the next span this thread starts have these ids."""
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        """The chosen trace id (a root run span's), or a new one."""
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids is not None else int(self._inner.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        """As the generator it wraps says (the SDK asks it)."""
        return bool(getattr(self._inner, "is_trace_id_random", lambda: False)())

    def generate_span_id(self) -> int:
        """The chosen span id, once, or a new one."""
        ids = getattr(self._local, "ids", None)
        if ids is not None:
            self._local.ids = None
            return int(ids[1])
        return int(self._inner.generate_span_id())


class _Run:
    """What the tracer knows of one run: its trace context, and its timers' creation."""

    __slots__ = ("_context", "_parent", "execution_id", "name", "started_at", "timers", "trace")

    def __init__(self, started: ExecutionStarted, trace: TraceContext) -> None:
        self.execution_id = started.execution_id
        self.name = started.name
        self.started_at = started.timestamp
        self.trace = trace
        self.timers: dict[int, datetime] = {}
        self._context: otel_context.Context | None = None
        self._parent: SpanContext | None = None

    @property
    def parent(self) -> SpanContext:
        """The run span's context (remote: it is emitted when the run ends), the parent of
        its activities and timers, made once."""
        parent = self._parent
        if parent is None:
            parent = self._parent = span_context(self.trace.run_parent(), self.trace.trace_state)
        return parent

    @property
    def context(self) -> otel_context.Context:
        """The context whose span is the run span (the parent of its activities and timers),
        made once."""
        context = self._context
        if context is None:
            context = self._context = trace.set_span_in_context(NonRecordingSpan(self.parent))
        return context


def _current_context_var() -> ContextVar[otel_context.Context] | None:
    """The variable that holds OpenTelemetry's current context, when its runtime context is
    the API's own (``contextvars``, the default): :class:`ActivityAttempt` sets it as
    ``attach`` would, for less. None for another runtime context."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
        return var
    return None


_CURRENT = _current_context_var()


class RunningAttempt(Protocol):
    """An activity attempt's span, current on its thread while the activity runs
    (:class:`ActivityAttempt`, or a light span that is one itself)."""

    def finished(self, event: HistoryEvent) -> None:
        """The attempt ended with ``event`` (TaskCompleted or TaskFailed)."""


class ActivityAttempt:
    """One activity attempt's span, current on its thread while the activity runs."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        var = _CURRENT
        if var is None:
            self._token = otel_context.attach(trace.set_span_in_context(span))
        else:  # (what set_span_in_context and attach do)
            self._token = var.set(otel_context.Context({**var.get(), _SPAN_KEY: span}))

    def finished(self, event: HistoryEvent) -> None:
        """The attempt ended with ``event`` (TaskCompleted or TaskFailed)."""
        var = _CURRENT
        try:
            if var is None:
                raise LookupError
            var.reset(self._token)
        except Exception:  # (detach logs why it cannot)
            otel_context.detach(self._token)
        if type(event) is TaskFailed:
            fail_span(self._span, event.failure)
        self._span.end()


class Tracing:
    """The spans of one runtime (see the module).

    Args:
        history: reads an instance's stored history (of its current run).
        provider: the ``TracerProvider`` to use; None for the global one.
    """

    def __init__(
        self,
        history: Callable[[str], Sequence[HistoryEvent]],
        provider: trace.TracerProvider | None = None,
    ) -> None:
        self.provider = provider or trace.get_tracer_provider()
        """Where the spans go."""
        self._tracer = self.provider.get_tracer("treadle", _installed_version())
        inner = getattr(self._tracer, "id_generator", None)
        self._ids = _ChosenIds(inner) if inner is not None else None
        if self._ids is not None:
            self._tracer.id_generator = self._ids  # type: ignore[attr-defined]
        self.spans = _spans(self._tracer, inner)
        """What starts its spans (:class:`~treadle.runtime.tracing_spans.Spans`, or the tracer)."""
        self._child: Callable[..., Span | None] | None = getattr(self.spans, "start_child", None)
        # (the SDK's sampler decides a root run's sampling when its trace context is made,
        # so that its activities and timers, emitted before it, follow the same decision)
        self._sampler = getattr(self._tracer, "sampler", None)
        self._root_known: Callable[[int], bool | None] | None = getattr(
            self.spans, "root_sampled", None
        )
        self._chosen: Callable[..., Span | None] | None = getattr(self.spans, "start_chosen", None)
        self._history = history
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._continued: dict[str, _Run] = {}  # runs whose continue-as-new is being committed

    # ---- before a commit: ids into history --------------------------------------------
    def stamp(self, commit: TurnCommit) -> TurnCommit:
        """``commit`` with trace contexts filled in: the run span's id in a new run's
        ExecutionStarted, and the parent of the runs it starts (children, continue-as-new).
        If that fails (a history it needs cannot be read), ``commit`` as it was."""
        if commit.history_start and not commit.new_instances and not commit.reset_history:
            return commit  # (a turn of a run under way that starts none: nothing to stamp)
        try:
            return self._stamp(commit)
        except Exception:  # (tracing never fails a workflow)
            logger.warning("could not trace %s", commit.instance_id, exc_info=True)
            return commit

    def stamp_start_events(self, instance_id: str, events: list[HistoryEvent]) -> None:
        """Put the run span's id into a new run's ``ExecutionStarted`` among ``events`` (in
        place), before the turn is committed: for a turn sent to an SDK worker, so that its
        first request already carries the id (``workflowSpanID``) that history will hold.
        The commit's own :meth:`stamp` then finds it set. Never raises."""
        try:
            self._stamp_started(instance_id, events)
        except Exception:  # (tracing never fails a workflow)
            logger.warning("could not trace %s", instance_id, exc_info=True)

    def _stamp(self, commit: TurnCommit) -> TurnCommit:
        if commit.history_start == 0 and not commit.reset_history:
            commit = self._stamp_start(commit)
        if commit.new_instances:
            run = self._run(commit.instance_id, commit.execution_id)
            if run is not None:
                child = TraceContext(run.trace.run_parent(), "", run.trace.trace_state)
                commit = _replaced(
                    commit,
                    new_instances=[
                        _replaced(n, trace=child) if n.trace is None else n
                        for n in commit.new_instances
                    ],
                )
        if commit.reset_history and commit.new_messages:
            commit = self._stamp_next_run(commit)
        return commit

    def _stamp_start(self, commit: TurnCommit) -> TurnCommit:
        events = commit.new_events
        if type(events) is list:
            # (the turn's own list, made for its commit: the event replaced there, the commit
            # not copied; whatever shares the list sees the same run, with its trace context,
            # which replay never reads)
            self._stamp_started(commit.instance_id, events)
            return commit
        stamped = list(events)
        if self._stamp_started(commit.instance_id, stamped):
            return _replaced(commit, new_events=stamped)
        return commit

    def _stamp_started(self, instance_id: str, events: list[HistoryEvent]) -> bool:
        """Replace a new run's ``ExecutionStarted`` in ``events`` by one with the run span's
        id, and remember the run; whether there was one to stamp."""
        for i, event in enumerate(events):
            if type(event) is ExecutionStarted and (event.trace is None or not event.trace.span_id):
                tc, parent = _with_span_id(event.trace, self._sampler, self._root_known)
                started = _replaced(event, trace=tc)
                run = _Run(started, tc)
                run._parent = parent
                self._remember(instance_id, run)
                events[i] = started
                return True
        return False

    def _stamp_next_run(self, commit: TurnCommit) -> TurnCommit:
        """A run that continues as new: the next run's parent is its span (emitted once the
        commit is done, see :meth:`committed`)."""
        iid = commit.instance_id
        index, start = next(
            (
                (i, m.event)
                for i, m in enumerate(commit.new_messages)
                if m.instance_id == iid and type(m.event) is ExecutionStarted
            ),
            (-1, None),
        )
        if start is None:
            return commit
        with self._lock:
            run = self._runs.get(iid)
        if run is None:  # (the run before: its history is still the one stored)
            run = self._load(iid, None)
        if run is None:
            return commit
        with self._lock:
            self._continued[iid] = run
        after = TraceContext(run.trace.run_parent(), "", run.trace.trace_state)
        messages = list(commit.new_messages)
        messages[index] = _replaced(messages[index], event=_replaced(start, trace=after))
        return _replaced(commit, new_messages=messages)

    # ---- after a commit: spans out ------------------------------------------------------
    def committed(
        self, commits: Iterable[TurnCommit | None], outcomes: Mapping[str, CommitOutcome]
    ) -> None:
        """The turns ``commits`` were committed (``outcomes``, by instance id): emit the
        spans of the timers that fired and of the runs that ended."""
        for commit in commits:
            if commit is None:
                continue
            if commit.status not in _ENDS_RUN and not commit.reset_history:
                # (a turn of a run under way: only its timers have spans)
                for event in commit.new_events:
                    kind = type(event)
                    if kind is TimerCreated or kind is TimerFired:
                        break
                else:
                    continue
            outcome = outcomes.get(commit.instance_id)
            if outcome is None or not outcome.ok:
                continue
            try:
                self._committed(commit)
            except Exception:  # (tracing never fails a workflow)
                logger.warning("could not trace %s", commit.instance_id, exc_info=True)

    def _committed(self, commit: TurnCommit) -> None:
        iid = commit.instance_id
        run: _Run | None = None
        now = commit.new_events[0].timestamp if commit.new_events else None
        for event in commit.new_events:
            kind = type(event)
            if kind is TimerCreated:
                run = run or self._run(iid, commit.execution_id)
                if run is not None:
                    run.timers[event.event_id] = event.timestamp
            elif kind is TimerFired:
                run = run or self._run(iid, commit.execution_id)
                if run is not None:
                    assert isinstance(event, TimerFired)
                    self._timer(iid, run, event, now or event.timestamp)
        if commit.status in _ENDS_RUN:
            run = run or self._run(iid, commit.execution_id)
            with self._lock:
                self._runs.pop(iid, None)
            if run is not None:
                end = commit.new_events[-1].timestamp if commit.new_events else now
                self._end_run(iid, run, commit.status, commit.failure, end)
        elif commit.reset_history:
            with self._lock:
                continued = self._continued.pop(iid, None)
                self._runs.pop(iid, None)
            if continued is not None:
                end = next(
                    (m.event.timestamp for m in commit.new_messages if m.instance_id == iid), None
                )
                status = OrchestrationStatus.CONTINUED_AS_NEW
                self._end_run(iid, continued, status, None, end)

    def _timer(self, iid: str, run: _Run, event: TimerFired, now: datetime) -> None:
        created = run.timers.pop(event.timer_id, now)
        attributes: dict[str, Any] = {
            "durabletask.type": "timer",
            "durabletask.fire_at": event.fire_at.isoformat(),
            "durabletask.task.task_id": event.timer_id,
            "durabletask.task.instance_id": iid,
        }
        start = _ns(created)
        child = self._child
        span = None
        if child is not None:
            span = child("timer", run.parent, SpanKind.INTERNAL, attributes, start)
        if span is None:
            span = self.spans.start_span(
                "timer",
                context=run.context,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=start,
            )
        span.end(end_time=_ns(max(now, created)))

    def _end_run(
        self,
        iid: str,
        run: _Run,
        status: OrchestrationStatus,
        failure: FailureDetails | None,
        end: datetime | None,
    ) -> None:
        tc = run.trace
        parent: SpanContext | None = None
        trace_parent = tc.trace_parent
        if trace_parent[36:52] == tc.span_id:  # (a root: tc.is_root)
            if trace_parent.endswith("-00"):
                return  # (not sampled: nor were its activities and timers)
        else:
            parent = span_context(trace_parent, tc.trace_state)
        # (the run span's own context holds its ids, as its history keeps them)
        own = run._parent or run.parent
        trace_id, span_id = own[0], own[1]
        name = f"orchestration||{run.name}"
        attributes: dict[str, Any] = {
            "durabletask.type": "orchestration",
            "durabletask.task.name": run.name,
            "durabletask.task.instance_id": iid,
            "durabletask.task.execution_id": run.execution_id,
            "durabletask.runtime_status": status._name_,
        }
        start = _ns(run.started_at)
        chosen = self._chosen
        span = None
        if chosen is not None:  # (the ids as they are, without the id generator's detour)
            span = chosen(name, trace_id, span_id, parent, SpanKind.SERVER, attributes, start)
        if span is None:
            if parent is None:
                context = otel_context.Context()
            else:
                context = trace.set_span_in_context(NonRecordingSpan(parent))
            if self._ids is not None:
                self._ids.choose(trace_id, span_id)
            span = self.spans.start_span(
                name, context=context, kind=SpanKind.SERVER, attributes=attributes, start_time=start
            )
        if status is OrchestrationStatus.FAILED:
            fail_span(span, failure)
        span.end(end_time=_ns(max(end or run.started_at, run.started_at)))

    # ---- activities ---------------------------------------------------------------------
    def activity_started(self, item: ActivityWorkItem) -> RunningAttempt | None:
        """Start the span of an attempt of ``item`` (current until its ``finished``), if its
        run is traced."""
        run = self._runs.get(item.instance_id)  # (as _run does, without a call)
        if run is None or run.execution_id != item.execution_id:
            try:
                run = self._load(item.instance_id, item.execution_id)
            except Exception:
                logger.warning("could not read the trace of %s", item.instance_id, exc_info=True)
                return None
            if run is None:
                return None
        name = f"activity||{item.name}"
        attributes: dict[str, Any] = {
            "durabletask.type": "activity",
            "durabletask.task.name": item.name,
            "durabletask.task.task_id": item.task_id,
            "durabletask.task.instance_id": item.instance_id,
        }
        child = self._child
        parent = run._parent or run.parent
        span = None
        if (
            child is not None
        ):  # (a light span, current already: a tracing_spans.Attempt, if it records)
            span = child(name, parent, SpanKind.SERVER, attributes, None, _CURRENT)
            if span is not None and type(span) is not NonRecordingSpan and _CURRENT is not None:
                return span  # type: ignore[return-value]
        if span is None:
            span = self.spans.start_span(
                name, context=run.context, kind=SpanKind.SERVER, attributes=attributes
            )
        return ActivityAttempt(span)

    def run_parent(self, instance_id: str, execution_id: str) -> TraceContext | None:
        """The trace context whose parent is the run span of ``execution_id`` (what a
        request to an SDK worker carries), if the run is traced."""
        run = self._run(instance_id, execution_id)
        return (
            None if run is None else TraceContext(run.trace.run_parent(), "", run.trace.trace_state)
        )

    # ---- the runs known -----------------------------------------------------------------
    def _remember(self, iid: str, run: _Run) -> None:
        with self._lock:
            self._runs[iid] = run
            self._runs.move_to_end(iid)
            if len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)

    def _run(self, iid: str, execution_id: str) -> _Run | None:
        run = self._runs.get(iid)  # (one read of the dict, atomic: the lock is for changes)
        if run is not None and run.execution_id == execution_id:
            return run
        return self._load(iid, execution_id)

    def _load(self, iid: str, execution_id: str | None) -> _Run | None:
        """The traced run of ``iid`` its stored history holds (if ``execution_id``, only
        that run), now known here."""
        started: ExecutionStarted | None = None
        timers: dict[int, datetime] = {}
        for event in self._history(iid):
            if type(event) is ExecutionStarted:
                started = event
            elif type(event) is TimerCreated:
                timers[event.event_id] = event.timestamp
            elif isinstance(event, TimerFired):
                timers.pop(event.timer_id, None)
        if started is None or execution_id not in (None, started.execution_id):
            return None
        tc = started.trace
        if tc is None or not tc.span_id or not valid_traceparent(tc.trace_parent):
            return None
        run = _Run(started, tc)
        run.timers = timers
        self._remember(iid, run)
        return run


def _spans(tracer: trace.Tracer, ids: Any) -> Any:
    """What starts treadle's spans: light ones, or ``tracer`` itself without the SDK (``ids``:
    its id generator, before treadle wrapped it)."""
    try:
        from treadle.runtime.tracing_spans import Spans
    except ImportError:  # (no SDK installed: the tracer is not the SDK's)
        return tracer
    return Spans(tracer, ids)


_new_context = tuple.__new__

_FLAGS = (TraceFlags(TraceFlags.DEFAULT), TraceFlags(TraceFlags.SAMPLED))
"""A root run span's trace flags in its ``traceparent``, by whether it is sampled."""


def _with_span_id(
    tc: TraceContext | None, sampler: Any, known: Callable[[int], bool | None] | None
) -> tuple[TraceContext, SpanContext | None]:
    """``tc`` with a new run span id; a new root trace context if None (or malformed), sampled
    as ``sampler`` (the SDK tracer's, if any) decides for a root run span (``known`` may know
    its answer without asking it). With it, for a new root, the run span's context
    (what :attr:`_Run.parent` would parse from it, made from the ids as they are)."""
    span_id = random.getrandbits(64) or 1
    if tc is None or not valid_traceparent(tc.trace_parent):
        trace_id = random.getrandbits(128) or 1
        sampled = _root_sampled(trace_id, sampler, known)
        trace_parent = f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"
        tc = TraceContext(trace_parent, trace_parent[36:52])
        # (made as SpanContext's own __new__ makes it: the ids are in range, so it is valid)
        context = _new_context(
            SpanContext, (trace_id, span_id, True, _FLAGS[sampled], DEFAULT_TRACE_STATE, True)
        )
        return tc, context
    return TraceContext(tc.trace_parent, f"{span_id:016x}", tc.trace_state), None


def _root_sampled(trace_id: int, sampler: Any, known: Callable[[int], bool | None] | None) -> bool:
    """Whether ``sampler`` samples a root run span of ``trace_id``."""
    if sampler is None:
        return True
    # (the sampler asked with no parent looks at the current span: known only without one)
    if known is not None and not _current_span_valid():
        sampled: bool | None = known(trace_id)
        if sampled is not None:
            return sampled
    result = sampler.should_sample(None, trace_id, "orchestration", SpanKind.SERVER)
    return bool(result.decision.is_sampled())


_Plan = tuple[tuple[str, Callable[[Any], Any], Callable[[Any, Any], None]], ...]

_PLANS: dict[type, _Plan | None] = {}
"""How :func:`_replaced` copies each dataclass: per field, its name and its slot's getter and
setter; None for one it leaves to ``dataclasses.replace``."""


def _plan(cls: type) -> _Plan | None:
    """How to copy ``cls`` field by field without its ``__init__`` (see :func:`_replaced`):
    through each field's slot (its member descriptor: a third less than ``getattr`` and
    ``object.__setattr__``); None when only ``__init__`` makes one (a ``__post_init__``, a
    field it does not take) or a field has no slot."""
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields):
        return None
    plan = []
    for f in fields:
        slot = next((k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__), None)
        if not isinstance(slot, MemberDescriptorType):
            return None
        plan.append((f.name, slot.__get__, slot.__set__))
    return tuple(plan)


def _replaced(obj: _T, **changes: Any) -> _T:
    """``dataclasses.replace(obj, **changes)``, for less: a dataclass with slots whose
    ``__init__`` only sets its fields (no ``__post_init__``, every field an argument) is
    copied slot by slot, without calling it."""
    cls = type(obj)
    try:
        plan = _PLANS[cls]
    except KeyError:
        plan = _PLANS[cls] = _plan(cls)
    if plan is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    new = object.__new__(cls)
    for name, read, put in plan:
        put(new, changes[name] if name in changes else read(obj))
    return new


def _current_span_valid() -> bool:
    """Whether a valid span is current (``trace.get_current_span()``, for less)."""
    var = _CURRENT
    if var is None:
        return bool(trace.get_current_span().get_span_context().is_valid)
    span = var.get().get(_SPAN_KEY)
    return span is not None and isinstance(span, Span) and span.get_span_context().is_valid


def _installed_version() -> str | None:
    """treadle's version as installed (the tracer's instrumentation scope), None when it
    runs from a source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("treadle")
    except PackageNotFoundError:
        return None
