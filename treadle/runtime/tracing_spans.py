"""Spans recorded without the OpenTelemetry SDK's per-span machinery, for the SDK's tracer.

The SDK's ``Tracer.start_span`` and ``Span.end`` cost some 20-30 us a span in a tight loop
and three times that in a worker (cold caches between steps), most of a traced step's extra
CPU. A span that treadle starts and ends itself (an activity attempt, a timer, a run) needs
little of that machinery, so :meth:`Spans.start_span` makes one as the SDK would (the same
id generator, sampler, resource, scope, limits and trace flags), as a light :class:`Recorded`
span, and :meth:`Recorded.end` hands the span processor the same ``ReadableSpan`` the SDK's
would. The light span is a full API span: code that runs while it is current can set its
attributes, status and events.

It applies only where the result is the same: the SDK's ``Tracer``, enabled, without the SDK's
own metrics, and span processors that do nothing when a span starts or is ending (the SDK's
``BatchSpanProcessor`` and ``SimpleSpanProcessor``, as anything that only exports). Otherwise
:meth:`Spans.start_span` is the tracer's own.
"""

from __future__ import annotations

import os
import random
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

try:
    from opentelemetry.attributes import BoundedAttributes
except ImportError:  # pragma: no cover (older SDKs)
    from opentelemetry.sdk.util import BoundedAttributes  # type: ignore[attr-defined,no-redef]

try:
    from opentelemetry.sdk._shared_internal import BatchProcessor as _BatchProcessor

    _SDK_EMIT: Any = _BatchProcessor.emit
except ImportError:  # pragma: no cover (older SDKs: their batch processor's own on_end)
    _BatchProcessor = None  # type: ignore[assignment,misc]
    _SDK_EMIT = None

from treadle.core.history import HistoryEvent, TaskFailed
from treadle.runtime.span_status import fail_span

__all__ = ["Attempt", "Recorded", "Spans"]

_QUIET = (SpanProcessor, SimpleSpanProcessor, BatchSpanProcessor)
_NO_OP_START = frozenset(c.on_start for c in _QUIET)
_NO_OP_ENDING = frozenset(c._on_ending for c in _QUIET)
"""What the SDK's processors do when a span starts and is ending: nothing."""

_SAMPLED = TraceFlags.SAMPLED
_CHILD_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID
"""The trace flags a child takes from its parent (the rest are its own, unset)."""

_TRACE_FLAGS = tuple(TraceFlags(bits) for bits in range(256))
"""Each value of a trace flags byte as a ``TraceFlags``, made once (they do not change)."""

_new_context = tuple.__new__
_SPAN_ID_MAX = 2**64 - 1
_TRACE_ID_MAX = 2**128 - 1

_Quiet = tuple[object, bool, Callable[[ReadableSpan], None] | None, object, Any]

_UNSET = Status(StatusCode.UNSET)
"""A span's status until one is set (a Status does not change)."""

_STATIC = {Decision.RECORD_AND_SAMPLE: True, Decision.DROP: False}
"""Whether a span is sampled, by the decision of a static root sampler (ALWAYS_ON, ALWAYS_OFF;
one that records without sampling is asked)."""


class Spans:
    """Starts spans for ``tracer``: light ones where they give what the SDK's would (see the
    module), the tracer's own otherwise."""

    def __init__(self, tracer: trace.Tracer, ids: Any = None) -> None:
        self._tracer = tracer
        self._sdk = (
            isinstance(tracer, SdkTracer)
            and isinstance(getattr(tracer, "_tracer_metrics", None), NoOpTracerMetrics)
            and hasattr(tracer, "_span_limits")
            and hasattr(tracer, "_instrumentation_scope")
        )
        # (whether the tracer is enabled is its config's answer, read without the call)
        enabled = getattr(SdkTracer, "_is_enabled", None)
        self._config = (
            self._sdk
            and enabled is not None
            and getattr(type(tracer), "_is_enabled", None) is enabled
            and hasattr(tracer, "_tracer_config")
        )
        # (a child's span id: from ``ids``, the tracer's id generator as it was before treadle
        # wrapped it to choose run spans' ids, which a child never takes)
        generator = ids if ids is not None else getattr(tracer, "id_generator", None)
        self._span_id: Callable[[], int] = (
            _random_span_id
            if type(generator) is RandomIdGenerator
            else getattr(generator, "generate_span_id", _random_span_id)
        )
        # (the processors and the sampler last checked, each with the answer: one tuple, so
        # that activity threads checking at once never pair one's answer with another's;
        # with the processors: whether they are quiet, what a light span's end calls, the
        # multi-processor that holds them, and the SDK batch processor end can fill)
        self._quiet: _Quiet = (None, False, None, None, None)
        self._parent_based: tuple[object, bool] = (None, False)
        self._root: tuple[object, Any] = (None, None)

    def light(self) -> bool:
        """Whether a span started now would be a light one."""
        return self._on_end() is not None

    def _on_end(self) -> Callable[[ReadableSpan], None] | None:
        """What a light sampled span ends into (the span processor's ``on_end``, or what the
        one processor it holds does with a sampled span), if a span started now would be
        light; None if not."""
        tracer = self._tracer
        if not self._sdk or not tracer._is_enabled():  # type: ignore[attr-defined]
            return None
        processor = tracer.span_processor  # type: ignore[attr-defined]
        kind = type(processor)
        if kind is not SynchronousMultiSpanProcessor and kind is not ConcurrentMultiSpanProcessor:
            return None
        processors = processor._span_processors  # (a new tuple when one is added)
        checked, quiet, on_end, checked_processor, _ = self._quiet
        if processors is not checked or processor is not checked_processor:
            quiet = all(
                type(p).on_start in _NO_OP_START and type(p)._on_ending in _NO_OP_ENDING
                for p in processors
            )
            on_end = processor.on_end
            batch = None
            if kind is SynchronousMultiSpanProcessor and len(processors) == 1:
                on_end = _on_end_of(processors[0])  # (what the multi-processor would call)
                batch = _queue_of(on_end)
            self._quiet = (processors, quiet, on_end, processor, batch)
        return on_end if quiet else None

    def _follows_remote_parent(self, sampler: object) -> bool:
        """Whether ``sampler`` samples a span with a remote parent as the parent was (the
        SDK's default ``ParentBased``, whatever its root sampler)."""
        checked, parent_based = self._parent_based
        if sampler is not checked:
            parent_based = (
                isinstance(sampler, ParentBased)
                and type(sampler).should_sample is ParentBased.should_sample
                and getattr(sampler, "_remote_parent_sampled", None) is ALWAYS_ON
                and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
            )
            self._parent_based = (sampler, parent_based)
        return parent_based

    def root_sampled(self, trace_id: int) -> bool | None:
        """Whether the tracer's sampler samples a root span of ``trace_id`` (with no span
        current), when that is known without asking it: the SDK's ``ParentBased`` (as
        :meth:`_follows_remote_parent` checks) whose root sampler is ``ALWAYS_ON``,
        ``ALWAYS_OFF`` or ``TraceIdRatioBased``, as they are. None otherwise (ask it)."""
        sampler = getattr(self._tracer, "sampler", None)
        checked, root = self._root
        if sampler is not checked:
            root = getattr(sampler, "_root", None) if self._follows_remote_parent(sampler) else None
            if type(root) is StaticSampler:
                root = _STATIC.get(root._decision)
            elif type(root) is not TraceIdRatioBased:
                root = None
            self._root = (sampler, root)
        if root is None or type(root) is bool:
            return root
        return bool(trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < root.bound)

    def start_child(
        self,
        name: str,
        parent: SpanContext,
        kind: SpanKind,
        attributes: dict[str, types.AttributeValue],
        start_time: int | None = None,
        current: ContextVar[otel_context.Context] | None = None,
    ) -> trace.Span | None:
        """A light span, child of the remote span ``parent`` (a run span, for its activities
        and timers): what ``start_span`` would make in the context of ``parent``, for less.
        None if only ``start_span`` gives that (a span that is not light, a sampler that must
        be asked). Takes ``attributes`` as its own: their keys are non-empty strings and
        their values str, bool, int or float (the span's end does not check them again).

        With ``current`` (the variable of OpenTelemetry's current context), a span that
        records is an :class:`Attempt`, current until its :meth:`Attempt.finished`.
        """
        # (made in one call, without Recorded.__init__ and _on_end: an activity attempt's
        # span runs this on every step, its code and data cold since the step before)
        tracer: Any = self._tracer
        processors, quiet, on_end, processor, batch = self._quiet
        if not (  # (light as last checked: the same processors, the tracer enabled)
            quiet
            and self._config
            and tracer._tracer_config.is_enabled
            and tracer.span_processor is processor
            and processor._span_processors is processors
        ):
            if self._on_end() is None:
                return None
            processors, _, on_end, _, batch = self._quiet
        sampler = tracer.sampler
        checked, parent_based = self._parent_based
        if sampler is not checked:
            parent_based = self._follows_remote_parent(sampler)
        if not parent_based:
            return None
        # (ParentBased's ALWAYS_ON and ALWAYS_OFF: sampled as the parent is; the span's flags
        # are the parent's sampled and random-trace-id bits)
        # (a SpanContext is a tuple: its trace id, span id, remote, flags, state, valid)
        trace_id, _, _, flags, trace_state, valid = parent
        span_id = (_getrandbits(64) if self._span_id is _random_span_id else 0) or self._span_id()
        # (made as SpanContext's own __new__ makes it, without its checks of the trace id,
        # the parent's, and of the flags and state, the parent's: valid as the parent is, if
        # the span id is in range)
        valid = valid and 0 < span_id <= _SPAN_ID_MAX
        context = _new_context(
            SpanContext,
            (trace_id, span_id, False, _TRACE_FLAGS[flags & _CHILD_FLAGS], trace_state, valid),
        )
        if not flags & _SAMPLED:
            return trace.NonRecordingSpan(context)
        # (the fields Recorded.__init__ sets, as it sets them for a sampled span)
        span: Any = _new_object(Recorded if current is None else Attempt)
        span._spans = self
        span._name = name
        span._context = context
        span._parent = parent
        span._kind = kind
        span._on_end = on_end
        span._processors = processors
        span._batch = batch
        span._attributes = attributes
        span._events = ()
        span._links = ()
        span._status = _UNSET
        span._start_time = start_time if start_time is not None else time_ns()
        span._end_time = None
        span._plain = True  # (treadle's own attributes, of plain types: see Recorded.end)
        if current is not None:  # (what set_span_in_context and attach do)
            span._current = current
            span._token = current.set(_Context({**current.get(), _SPAN_KEY: span}))
        return span  # type: ignore[no-any-return]

    def start_chosen(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, types.AttributeValue],
        start_time: int,
    ) -> trace.Span | None:
        """A light span with the ids ``trace_id`` and ``span_id`` (a run span, whose ids its
        history keeps), child of the remote ``parent`` or a root: what the tracer's
        ``start_span`` would make with those ids from its id generator, in ``parent``'s
        context or an empty one. None if only the tracer's own path gives that (a span that
        is not light, a sampler that must be asked). Takes ``attributes`` as its own."""
        on_end = self._on_end()
        if on_end is None:
            return None
        tracer: Any = self._tracer
        if parent is None:
            sampled = self.root_sampled(trace_id)
            if sampled is None:
                return None
            random_trace_id = (
                self._span_id is _random_span_id or tracer.id_generator.is_trace_id_random()
            )
            trace_state = None
        elif parent.is_remote and self._follows_remote_parent(tracer.sampler):
            sampled = parent.trace_flags.sampled
            random_trace_id = parent.trace_flags.random_trace_id
            trace_state = parent.trace_state
        else:
            return None
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        # (as SpanContext's own __new__ makes it: the flags are made here, the state is the
        # parent's or none)
        valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
        state = trace_state if trace_state is not None else DEFAULT_TRACE_STATE
        context = _new_context(
            SpanContext, (trace_id, span_id, False, _TRACE_FLAGS[flags], state, valid)
        )
        if not sampled:
            return trace.NonRecordingSpan(context)
        return Recorded(self, name, context, parent, kind, attributes, start_time, on_end)

    def start_span(
        self,
        name: str,
        context: otel_context.Context,
        kind: SpanKind,
        attributes: Mapping[str, types.AttributeValue],
        start_time: int | None = None,
    ) -> trace.Span:
        """As ``tracer.start_span(name, context, kind, attributes, start_time=...)``; a light
        span may keep ``attributes`` as its own (treadle makes a dict for each span)."""
        if not self.light():
            return self._tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, start_time=start_time
            )
        tracer: Any = self._tracer
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = tracer.id_generator.generate_trace_id()
            random_trace_id = tracer.id_generator.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        sampler = tracer.sampler
        recording: bool
        extra: types.Attributes
        if parent is not None and parent.is_remote and self._follows_remote_parent(sampler):
            # (what ParentBased's ALWAYS_ON and ALWAYS_OFF answer, without asking them)
            sampled = recording = parent.trace_flags.sampled
            trace_state, extra = parent.trace_state, attributes
        else:
            result = sampler.should_sample(context, trace_id, name, kind, attributes, ())
            sampled, recording = result.decision.is_sampled(), result.decision.is_recording()
            trace_state, extra = result.trace_state, result.attributes
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            tracer.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=trace_state,
        )
        if not recording:
            return trace.NonRecordingSpan(span_context)
        return Recorded(
            self,
            name,
            span_context,
            parent,
            kind,
            extra,
            start_time,
            self._on_end() if sampled else None,
            own=extra is attributes,
        )


class Recorded(trace.Span, ReadableSpan):
    """A span recording as the SDK's would, ended into the tracer's span processor: once
    ended, it is the ``ReadableSpan`` the processor gets (as the SDK's own span is one), and
    changes no more."""

    def __init__(
        self,
        spans: Spans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
        on_end: Callable[[ReadableSpan], None] | None = None,
        own: bool | None = None,
    ) -> None:
        # (ReadableSpan's fields, as its own __init__ names them; the rest are set at the end)
        self._spans = spans
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        # (``on_end``: the span is sampled, and this is what it ends into while the
        # processors stay those it started with; ``attributes`` were made for it then, kept
        # as they are. ``own``: that, for a span not known to be sampled)
        self._on_end = on_end
        # (the processors on_end was chosen for, and the SDK's batch processor whose emit
        # it is, if end can do what that does: see end)
        processors, _, _, _, batch = spans._quiet
        self._processors = processors
        self._batch = batch if on_end is not None else None
        if own is None:
            own = on_end is not None
        self._attributes: Any = (
            attributes if own and type(attributes) is dict else dict(attributes or {})
        )
        # (lists once there is something in them: fewer objects for the collector)
        self._events: Any = ()
        self._links: Any = ()
        self._status = _UNSET
        self._start_time = start_time if start_time is not None else time_ns()
        self._end_time: int | None = None
        # (whether the attributes are still the plain ones start_child gave: see end)
        self._plain = False

    def end(self, end_time: int | None = None) -> None:
        """Hand the finished span to the tracer's span processor (once)."""
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        tracer: Any = self._spans._tracer
        limits = tracer._span_limits
        attributes = self._attributes
        if not (
            self._plain
            and limits.max_span_attribute_length is None
            and (
                limits.max_span_attributes is None or len(attributes) <= limits.max_span_attributes
            )
        ):  # (else they are as _bounded would return them)
            self._attributes = _bounded(attributes, limits)
        self._events = BoundedList.from_seq(limits.max_events, self._events) if self._events else ()
        self._links = BoundedList.from_seq(limits.max_links, self._links) if self._links else ()
        self._resource = tracer.resource
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        # (into the processors as they are now, as the SDK's span ends)
        processor = tracer.span_processor
        on_end = self._on_end
        if on_end is None or processor._span_processors is not self._processors:
            processor.on_end(self)
            return
        batch = self._batch
        if batch is not None:
            # (what the batch processor's emit does, without its call and its getpid: the
            # queue is this process's while the pid the processor keeps is this one's, which
            # the processor's own fork handler renews; a queue that is full, or shut down,
            # goes to emit, which drops the span and says so)
            queue = batch._queue
            if not batch._shutdown and batch._pid == _pid and len(queue) != batch._max_queue_size:
                queue.appendleft(self)
                if len(queue) >= batch._max_export_batch_size:
                    awaken = batch._worker_awaken
                    if not awaken.is_set():
                        awaken.set()
                return
        on_end(self)

    def get_span_context(self) -> SpanContext:
        """The span's context."""
        return self._context  # type: ignore[return-value]  # (set by __init__, never None)

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Set ``attributes`` (while the span records)."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """Set an attribute (while the span records; a key set again moves last, as the SDK's
        bounded attributes do)."""
        if self._end_time is None:
            self._plain = False
            self._attributes.pop(key, None)
            self._attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        """Add an event (while the span records)."""
        if self._end_time is not None:
            return
        limits = self._spans._tracer._span_limits  # type: ignore[attr-defined]
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        event = Event(name=name, attributes=bounded, timestamp=timestamp)
        if self._events:
            self._events.append(event)
        else:
            self._events = [event]

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Add a link (while the span records), as the SDK's span does."""
        if self._end_time is not None:
            return
        if not (context.is_valid or attributes or context.trace_state):
            return
        limits = self._spans._tracer._span_limits  # type: ignore[attr-defined]
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        if self._links:
            self._links.append(Link(context, bounded))
        else:
            self._links = [Link(context, bounded)]

    def update_name(self, name: str) -> None:
        """Rename the span (while it records)."""
        if self._end_time is None:
            self._name = name

    def is_recording(self) -> bool:
        """True until the span ends."""
        return self._end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status, as the SDK's span does (OK is final, UNSET is ignored)."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Add an ``exception`` event, as the SDK's span does."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        recorded: dict[str, Any] = {
            "exception.type": (
                f"{module}.{qualname}" if module and module != "builtins" else qualname
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)


class Attempt(Recorded):
    """An activity attempt's light span (:meth:`Spans.start_child` with ``current``): current
    on its thread from its start until :meth:`finished`."""

    _current: ContextVar[otel_context.Context]
    _token: Token[otel_context.Context]

    def finished(self, event: HistoryEvent) -> None:
        """The attempt ended with ``event`` (TaskCompleted or TaskFailed): no longer current,
        failed if it failed, ended."""
        try:
            self._current.reset(self._token)
        except Exception:  # (detach logs why it cannot)
            otel_context.detach(self._token)
        if type(event) is TaskFailed:
            fail_span(self, event.failure)
        self.end()


_PLAIN = frozenset({str, bool, int, float})

_new_object = object.__new__
_Context = otel_context.Context

_pid = os.getpid()
"""This process's id, renewed in a child after a fork (see :meth:`Recorded.end`)."""


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _queue_of(emit: Callable[[ReadableSpan], None]) -> Any:
    """The SDK's batch processor whose ``emit`` is ``emit``, if :meth:`Recorded.end` can do
    what its emit does (the SDK's own class, with the fields its emit reads); else None."""
    batch = getattr(emit, "__self__", None)
    if (
        _SDK_EMIT is None
        or type(batch) is not _BatchProcessor
        or getattr(emit, "__func__", None) is not _SDK_EMIT
        or not hasattr(os, "register_at_fork")
    ):
        return None
    fields = ("_queue", "_shutdown", "_pid", "_max_queue_size", "_max_export_batch_size")
    if not all(hasattr(batch, f) for f in (*fields, "_worker_awaken")):
        return None
    return batch


_getrandbits = random.getrandbits


def _random_span_id() -> int:
    """A span id as the SDK's ``RandomIdGenerator`` makes one."""
    return _getrandbits(64) or _random_span_id()


def _on_end_of(processor: SpanProcessor) -> Callable[[ReadableSpan], None]:
    """What ``processor`` does with a sampled span that ended: the SDK's batch processor
    queues it (its ``on_end`` checks it is sampled first); any other, its ``on_end``."""
    if type(processor) is BatchSpanProcessor:
        emit = getattr(getattr(processor, "_batch_processor", None), "emit", None)
        if emit is not None:
            return emit  # type: ignore[no-any-return]
    return processor.on_end


def _bounded(attributes: dict[str, Any], limits: Any) -> types.Attributes:
    """``attributes`` as the SDK's span would export them, bounded by ``limits``: as they are
    when within the limits and of plain types (nothing then to clean, drop or cut; exporters
    read a span's attributes as a read-only mapping either way)."""
    if limits.max_span_attribute_length is None and (
        limits.max_span_attributes is None or len(attributes) <= limits.max_span_attributes
    ):
        for key, value in attributes.items():
            if type(value) not in _PLAIN or type(key) is not str or not key:
                break
        else:
            return attributes
    return BoundedAttributes(
        limits.max_span_attributes,
        attributes,
        immutable=True,
        max_value_len=limits.max_span_attribute_length,
    )
