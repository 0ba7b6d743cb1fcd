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

import traceback
from collections.abc import Mapping
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

try:
    from opentelemetry.attributes import BoundedAttributes
except ImportError:  # pragma: no cover (older SDKs)
    from opentelemetry.sdk.util import BoundedAttributes  # type: ignore[attr-defined,no-redef]

__all__ = ["Recorded", "Spans"]

_QUIET = (SpanProcessor, SimpleSpanProcessor, BatchSpanProcessor)
_NO_OP_START = frozenset(c.on_start for c in _QUIET)
_NO_OP_ENDING = frozenset(c._on_ending for c in _QUIET)
"""What the SDK's processors do when a span starts and is ending: nothing."""


class Spans:
    """Starts spans for ``tracer``: light ones where they give what the SDK's would (see the
    module), the tracer's own otherwise."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._sdk = (
            isinstance(tracer, SdkTracer)
            and isinstance(getattr(tracer, "_tracer_metrics", None), NoOpTracerMetrics)
            and hasattr(tracer, "_span_limits")
            and hasattr(tracer, "_instrumentation_scope")
        )
        # (the processors and the sampler last checked, each with the answer: one tuple, so
        # that activity threads checking at once never pair one's answer with another's)
        self._quiet: tuple[object, bool] = (None, False)
        self._parent_based: tuple[object, bool] = (None, False)

    def light(self) -> bool:
        """Whether a span started now would be a light one."""
        tracer = self._tracer
        if not self._sdk or not tracer._is_enabled():  # type: ignore[attr-defined]
            return False
        processor = tracer.span_processor  # type: ignore[attr-defined]
        if type(processor) not in (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor):
            return False
        processors = processor._span_processors  # (a new tuple when one is added)
        checked, quiet = self._quiet
        if processors is not checked:
            quiet = all(
                type(p).on_start in _NO_OP_START and type(p)._on_ending in _NO_OP_ENDING
                for p in processors
            )
            self._quiet = (processors, quiet)
        return quiet

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

    def start_span(
        self,
        name: str,
        context: otel_context.Context,
        kind: SpanKind,
        attributes: Mapping[str, types.AttributeValue],
        start_time: int | None = None,
    ) -> trace.Span:
        """As ``tracer.start_span(name, context, kind, attributes, start_time=...)``."""
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
        return Recorded(self, name, span_context, parent, kind, extra, start_time)


class Recorded(trace.Span):
    """A span recording as the SDK's would, ended into the tracer's span processor."""

    def __init__(
        self,
        spans: Spans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
    ) -> None:
        self._spans = spans
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._status = Status(StatusCode.UNSET)
        self._start_time = start_time if start_time is not None else time_ns()
        self._end_time: int | None = None

    def end(self, end_time: int | None = None) -> None:
        """Hand the finished span to the tracer's span processor (once)."""
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        tracer: Any = self._spans._tracer
        limits = tracer._span_limits
        tracer.span_processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=tracer.resource,
                attributes=_bounded(self._attributes, limits),
                events=BoundedList.from_seq(limits.max_events, self._events)
                if self._events
                else (),
                links=BoundedList.from_seq(limits.max_links, self._links) if self._links else (),
                kind=self._kind,
                status=self._status,
                start_time=self._start_time,
                end_time=self._end_time,
                instrumentation_info=tracer.instrumentation_info,
                instrumentation_scope=tracer._instrumentation_scope,
            )
        )

    def get_span_context(self) -> SpanContext:
        """The span's context."""
        return self._context

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Set ``attributes`` (while the span records)."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """Set an attribute (while the span records; a key set again moves last, as the SDK's
        bounded attributes do)."""
        if self._end_time is None:
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
        self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

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
        self._links.append(Link(context, bounded))

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


_PLAIN = frozenset({str, bool, int, float})


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
