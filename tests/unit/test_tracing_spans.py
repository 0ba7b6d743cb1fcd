"""treadle's light spans (treadle.runtime.tracing_spans) export what the OpenTelemetry SDK's
own spans do: an activity attempt's span, a timer's and a run's, recorded both ways through
treadle's Tracing, compare equal in every exported field but their own ids and times."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    TaskCompleted,
    TaskFailed,
    TimerCreated,
    TimerFired,
    TraceContext,
)
from treadle.errors import FailureDetails
from treadle.runtime.tracing import Tracing, _replaced
from treadle.runtime.tracing_spans import Recorded
from treadle.store.base import ActivityWorkItem, CommitOutcome, NewMessage, TurnCommit

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class _Starts(SpanProcessor):
    """A processor that sees spans start: the SDK's own span path is then the one taken."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append(span.name)


def _tracing(
    light: bool, sampler: Any = None, limits: SpanLimits | None = None, batch: bool = False
) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "svc"}), sampler=sampler, span_limits=limits
    )
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    if not light:
        provider.add_span_processor(_Starts())
    started = ExecutionStarted(
        timestamp=T0, name="order", instance_id="i1", execution_id="e1", input=None
    )
    tracing = Tracing(lambda iid: [started], provider)
    # the run's first turn, stamped with its trace context
    root = isinstance(sampler, ParentBased)
    first = dataclasses.replace(started, trace=None if root else _remote())
    tracing.stamp(_commit([first], 0))
    return tracing, exporter


def _commit(
    events: list[HistoryEvent],
    start: int,
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    failure: FailureDetails | None = None,
) -> TurnCommit:
    return TurnCommit(
        instance_id="i1",
        expected_version=start,
        new_events=events,
        history_start=start,
        status=status,
        execution_id="e1",
        failure=failure,
    )


def _remote() -> TraceContext:
    return TraceContext(PARENT)


def _item() -> ActivityWorkItem:
    return ActivityWorkItem(
        id=7, instance_id="i1", execution_id="e1", task_id=3, name="greet", input=None,
        task_execution_id="x",
    )  # fmt: skip


def _fields(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The exported fields of ``span``; a parent among ``spans`` by its place there."""
    assert span.context is not None
    ours = {s.context.span_id: i for i, s in enumerate(spans) if s.context is not None}
    parent: Any = span.parent
    if parent is not None and parent.span_id in ours:
        parent = ("span", ours[parent.span_id], parent.trace_id, parent.trace_flags)
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.context.trace_id,
        "flags": span.context.trace_flags,
        "trace_state": span.context.trace_state,
        "remote": span.context.is_remote,
        "parent": parent,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "links": list(span.links),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
        "info": span._instrumentation_info,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "json": _without_ids(span.to_json()),
    }


def _without_ids(text: str) -> str:
    data = json.loads(text)
    for key in ("start_time", "end_time"):
        data.pop(key)
    data["context"].pop("span_id")
    data.pop("parent_id")
    for event in data["events"]:
        event.pop("timestamp")
    return json.dumps(data, sort_keys=True)


def _attempt(tracing: Tracing, outcome: HistoryEvent) -> None:
    attempt = tracing.activity_started(_item())
    assert attempt is not None
    with tracing.provider.get_tracer("app").start_as_current_span("inside"):
        pass
    trace.get_current_span().set_attribute("app.key", "value")
    attempt.finished(outcome)


def _run_all(tracing: Tracing) -> None:
    _attempt(tracing, TaskCompleted(timestamp=T0, task_scheduled_id=3))
    failure = FailureDetails(message="boom", error_type="ValueError")
    _attempt(tracing, TaskFailed(timestamp=T0, task_scheduled_id=3, failure=failure))
    fire_at = T0 + timedelta(seconds=5)
    created = TimerCreated(event_id=4, timestamp=T0, fire_at=fire_at)
    fired = TimerFired(timestamp=fire_at, timer_id=4, fire_at=fire_at)
    ok = {"i1": CommitOutcome(instance_id="i1", ok=True)}
    tracing.committed([_commit([created], 1)], ok)
    tracing.committed([_commit([fired], 2, OrchestrationStatus.FAILED, failure)], ok)


def _exported(
    light: bool, sampler: Any = None, limits: SpanLimits | None = None, batch: bool = False
) -> Sequence[ReadableSpan]:
    random.seed(7)  # (a root run: the same trace and span ids both ways)
    tracing, exporter = _tracing(light, sampler, limits, batch)
    assert tracing.spans.light() is light
    _run_all(tracing)
    flush = getattr(tracing.provider, "force_flush", None)
    assert flush is not None and flush()
    return exporter.get_finished_spans()


class _Tagging(Sampler):
    """Samples every span, with an attribute of its own."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "by": name})

    def get_description(self) -> str:
        return "tagging"


@pytest.mark.parametrize(
    "sampler",
    [
        None,
        ParentBased(ALWAYS_OFF),
        ParentBased(ALWAYS_ON),
        ParentBased(TraceIdRatioBased(1.0)),
        ParentBased(TraceIdRatioBased(0.0)),
        ParentBased(_Tagging()),
        _Tagging(),
    ],
)
def test_light_spans_export_what_the_sdk_spans_do(sampler: Any) -> None:
    sdk = _exported(light=False, sampler=sampler)
    light = _exported(light=True, sampler=sampler)
    assert [s.name for s in sdk] == [s.name for s in light]
    for old, new in zip(sdk, light, strict=True):
        assert _fields(new, light) == _fields(old, sdk)
        assert new.context is not None and old.context is not None
        assert new.context.span_id == old.context.span_id
        if new.name in ("timer", "orchestration||order"):  # (times from history)
            assert (new.start_time, new.end_time) == (old.start_time, old.end_time)
    if (
        isinstance(sampler, ParentBased)
        and sampler.should_sample(None, 1, "x").decision is Decision.DROP
    ):
        assert light == ()  # (a root run not sampled: nor is anything under it)
        return
    names = [s.name for s in light]
    assert names == ["inside", "activity||greet"] * 2 + ["timer", "orchestration||order"]
    inside, activity = light[0], light[1]
    assert inside.parent is not None and activity.context is not None
    assert inside.parent.span_id == activity.context.span_id
    assert activity.attributes is not None and activity.attributes["app.key"] == "value"
    assert light[3].status.description == "ValueError: boom"
    if isinstance(sampler, _Tagging):
        assert activity.attributes["by"] == "activity||greet"


def test_a_batch_processor_exports_light_spans_as_the_sdk_spans() -> None:
    sdk = _exported(light=False, batch=True)
    light = _exported(light=True, batch=True)
    assert len(light) == 6
    assert [_fields(s, sdk) for s in sdk] == [_fields(s, light) for s in light]


def test_light_spans_are_bounded_as_the_sdk_spans_are() -> None:
    limits = SpanLimits(max_span_attributes=3, max_span_attribute_length=4, max_events=1)
    sdk = _exported(light=False, limits=limits)
    light = _exported(light=True, limits=limits)
    assert [_fields(s, sdk) for s in sdk] == [_fields(s, light) for s in light]
    activity = light[1]
    assert activity.dropped_attributes == 2
    assert activity.attributes is not None and activity.attributes["app.key"] == "valu"


def test_the_current_span_while_an_attempt_runs_is_the_attempt_span() -> None:
    tracing, _ = _tracing(light=True)
    attempt = tracing.activity_started(_item())
    assert attempt is not None
    current = trace.get_current_span()
    assert isinstance(current, Recorded) and current.is_recording()
    attempt.finished(TaskCompleted(timestamp=T0, task_scheduled_id=3))
    assert not current.is_recording()
    assert trace.get_current_span() is not current


def test_a_processor_that_sees_spans_start_turns_light_spans_off() -> None:
    tracing, _ = _tracing(light=True)
    assert tracing.spans.light()
    starts = _Starts()
    provider = tracing.provider
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(starts)
    assert not tracing.spans.light()
    attempt = tracing.activity_started(_item())
    assert attempt is not None
    attempt.finished(TaskCompleted(timestamp=T0, task_scheduled_id=3))
    assert starts.started == ["activity||greet"]


@pytest.mark.parametrize(
    ("root", "known"),
    [
        (ALWAYS_ON, True),
        (ALWAYS_OFF, True),
        (TraceIdRatioBased(0.5), True),
        (TraceIdRatioBased(0.01), True),
        (StaticSampler(Decision.RECORD_ONLY), False),
        (_Tagging(), False),
    ],
)
def test_a_root_runs_sampling_is_the_samplers_answer(root: Sampler, known: bool) -> None:
    """Spans.root_sampled answers as the sampler would for a root span, or not at all."""
    sampler = ParentBased(root)
    tracing, _ = _tracing(light=True, sampler=sampler)
    rng = random.Random(3)
    for _ in range(300):
        trace_id = rng.getrandbits(128) or 1
        answer = tracing.spans.root_sampled(trace_id)
        if not known:
            assert answer is None
            continue
        asked = sampler.should_sample(None, trace_id, "orchestration", SpanKind.SERVER)
        assert answer is (asked.decision is Decision.RECORD_AND_SAMPLE)
    # (another parent-based sampler than the SDK's default: asked)
    other = ParentBased(root, remote_parent_not_sampled=ALWAYS_ON)
    tracing, _ = _tracing(light=True, sampler=other)
    assert tracing.spans.root_sampled(1) is None


def test_replaced_copies_as_dataclasses_replace_does() -> None:
    started = ExecutionStarted(timestamp=T0, name="order", instance_id="i1", execution_id="e1")
    context = TraceContext(PARENT, "b7ad6b7169203331")
    commit = _commit([started], 0)
    message = NewMessage(instance_id="i2", event=started)

    @dataclasses.dataclass
    class Plain:  # (no slots: left to dataclasses.replace)
        a: int
        b: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass
    class Checked:  # (a __post_init__: left to dataclasses.replace, which runs it)
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    cases: list[tuple[Any, dict[str, Any]]] = [
        (started, {"trace": context}),
        (commit, {"new_events": [started]}),
        (message, {"event": started}),
        (Plain(1, [2]), {"a": 3}),
        (Checked(1), {"a": 2}),
    ]
    for obj, changes in cases:
        copy = _replaced(obj, **changes)
        assert copy == dataclasses.replace(obj, **changes)
        assert copy is not obj and type(copy) is type(obj)
    assert _replaced(started, trace=context).name == "order"  # (the rest as it was)
    with pytest.raises(ValueError, match="negative"):
        _replaced(Checked(1), a=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _replaced(started, trace=context).name = "x"  # type: ignore[misc]


def test_a_light_span_ended_after_the_batch_processor_shut_down_is_dropped_as_the_sdk_drops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A light span ends into the SDK batch processor's queue without its emit while that is
    what emit would do; once the processor is shut down, emit takes it (and drops it)."""
    tracing, exporter = _tracing(light=True, batch=True)
    _attempt(tracing, TaskCompleted(timestamp=T0, task_scheduled_id=3))
    assert tracing.spans._quiet[4] is not None  # (the queue the span's end filled)
    provider = tracing.provider
    assert isinstance(provider, TracerProvider)
    assert provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["inside", "activity||greet"]
    attempt = tracing.activity_started(_item())
    assert attempt is not None
    provider.shutdown()
    with caplog.at_level("INFO"):
        attempt.finished(TaskCompleted(timestamp=T0, task_scheduled_id=3))
    assert "Shutdown called, ignoring" in caplog.text
    assert [s.name for s in exporter.get_finished_spans()] == ["inside", "activity||greet"]


_FORKED = """
import os, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from treadle.core.history import ExecutionStarted, TaskCompleted, TraceContext
from treadle.runtime.tracing import Tracing
from treadle.store.base import ActivityWorkItem, TurnCommit, OrchestrationStatus

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(exporter))
started = ExecutionStarted(name="order", instance_id="i1", execution_id="e1",
                           trace=TraceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
tracing = Tracing(lambda iid: [started], provider)
tracing.stamp(TurnCommit(instance_id="i1", expected_version=0, new_events=[started],
                         history_start=0, status=OrchestrationStatus.RUNNING, execution_id="e1"))
item = ActivityWorkItem(id=1, instance_id="i1", execution_id="e1", task_id=1, name="greet",
                        input=None, task_execution_id="x")
done = TaskCompleted(task_scheduled_id=1)
tracing.activity_started(item).finished(done)  # (before the fork: in the parent's queue)
pid = os.fork()
if pid == 0:  # the child: its processor starts again, empty, with a worker of its own
    tracing.activity_started(item).finished(done)
    provider.force_flush()
    os.write(1, f"child {len(exporter.get_finished_spans())}\\n".encode())
    os._exit(0)
os.waitpid(pid, 0)
provider.force_flush()
print("parent", len(exporter.get_finished_spans()))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_light_spans_ended_in_a_forked_child_are_exported_by_the_childs_processor() -> None:
    """After a fork, the child's spans go to the child's own batch queue and worker (as the
    SDK's emit sends them), none of the parent's with them."""
    done = subprocess.run(
        [sys.executable, "-c", _FORKED], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\n")[:-1]) == ["child 1", "parent 1"], done.stdout


def test_a_span_start_child_makes_has_the_fields_recorded_init_sets() -> None:
    """start_child sets a light span's fields itself, without Recorded.__init__: the same ones
    (an attempt's two more: its context variable and token)."""
    tracing, _ = _tracing(light=True)
    run = tracing._runs["i1"]
    spans = tracing.spans
    inline = spans.start_child("timer", run.parent, SpanKind.INTERNAL, {"k": "v"})
    made = Recorded(spans, "timer", run.parent, run.parent, SpanKind.INTERNAL, {}, None)
    assert isinstance(inline, Recorded) and type(inline) is Recorded
    assert set(vars(inline)) == set(vars(made))
    attempt = tracing.activity_started(_item())
    assert attempt is not None
    assert set(vars(attempt)) == set(vars(made)) | {"_current", "_token"}
    attempt.finished(TaskCompleted(timestamp=T0, task_scheduled_id=3))
