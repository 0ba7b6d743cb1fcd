"""Replay saved histories against today's workflow code, and say where they part.

A deploy that changes workflow code under running instances breaks them if the new code
does not do, step by step, what their histories recorded. :class:`Replayer` checks that
before the deploy: it replays histories exported from production
(``treadle workflow export``) with the pure replay core, and reports for each either OK or
the first divergence: the instance, the index of the event in the history, what history
recorded there and what the code did now.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast, overload

from treadle.core.actions import Action, CompleteOrchestration
from treadle.core.history import (
    EventSent,
    ExecutionCompleted,
    HistoryEvent,
    OrchestrationStatus,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
    event_to_dict,
)
from treadle.core.history_file import SavedHistory, load_history
from treadle.core.replay import WorkflowExecution
from treadle.core.versioning import VersionedWorkflow, settle_turn
from treadle.errors import NonDeterminismError
from treadle.runtime import WorkflowRuntime
from treadle.runtime.registry import Registry

__all__ = ["Divergence", "HistoryReplay", "ReplayReport", "Replayer"]

_ACTION_RECORDS = (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent)


@dataclass(frozen=True)
class Divergence:
    """Where a history and today's code part.

    Attributes:
        instance_id: the instance the history is of.
        event_index: the index (from 0) of the event in the history where they part.
        recorded: what history recorded there.
        actual: what the code did now.
        message: all of it, in one sentence for people.
    """

    instance_id: str
    event_index: int
    recorded: str
    actual: str
    message: str

    def __str__(self) -> str:
        """The message (what ``assert result.ok, result.divergence`` shows)."""
        return self.message


@dataclass(frozen=True)
class HistoryReplay:
    """The outcome of replaying one history.

    Attributes:
        instance_id: the instance the history is of.
        workflow: its workflow name.
        divergence: the first divergence, or None if the code replays it exactly.
        source: where the history came from (a file name), if known.
    """

    instance_id: str
    workflow: str
    divergence: Divergence | None
    source: str | None = None

    @property
    def ok(self) -> bool:
        """Whether today's code replays the history exactly."""
        return self.divergence is None


@dataclass(frozen=True)
class ReplayReport:
    """The outcome of replaying several histories: ``ok`` when all replay exactly.

    Attributes:
        results: one :class:`HistoryReplay` per history, in the order given.
    """

    results: tuple[HistoryReplay, ...]

    @property
    def ok(self) -> bool:
        """Whether every history replays exactly."""
        return all(r.ok for r in self.results)

    @property
    def divergence(self) -> str | None:
        """Every divergence, one per line (None if there is none): what ``assert
        result.ok, result.divergence`` prints."""
        lines = [str(r.divergence) for r in self.results if r.divergence is not None]
        return "\n".join(lines) if lines else None

    @property
    def failures(self) -> list[HistoryReplay]:
        """The histories that diverge."""
        return [r for r in self.results if not r.ok]


HistoryInput = str | bytes | SavedHistory | list[HistoryEvent] | tuple[HistoryEvent, ...]
"""A history: a file's text, a :class:`SavedHistory`, or a list of events."""

HistoryList = list[str] | list[bytes] | list[SavedHistory] | list[str | bytes | SavedHistory]
"""Several histories."""


class Replayer:
    """Replays saved histories against today's workflow code.

    Args:
        workflows: the workflow functions (by the names they are registered under, as
            ``register_workflow(fn)`` names them), :class:`VersionedWorkflow` objects, or a
            :class:`~treadle.runtime.WorkflowRuntime` whose registered workflows to use.

    Raises:
        RegistrationError: two workflows have the same name.
    """

    def __init__(
        self, workflows: Iterable[Callable[..., Any] | VersionedWorkflow] | WorkflowRuntime
    ):
        if isinstance(workflows, WorkflowRuntime):
            self._workflows = workflows.registered_workflows
            return
        registry = Registry()
        for item in workflows:
            if isinstance(item, VersionedWorkflow):
                registry.workflows[item.name] = item
            else:
                registry.add_workflow(item)
        self._workflows = dict(registry.workflows)

    @overload
    def replay(self, history: HistoryInput) -> HistoryReplay: ...
    @overload
    def replay(self, history: HistoryList) -> ReplayReport: ...
    def replay(self, history: HistoryInput | HistoryList) -> HistoryReplay | ReplayReport:
        """Replay one history (a file's text, a :class:`SavedHistory` or a list of events),
        or a list of them (then the result is a :class:`ReplayReport`). Either result has
        ``ok`` and ``divergence``.

        Raises:
            ValueError: a text is not a history file (see
                :func:`~treadle.core.history_file.load_history`).
        """
        if isinstance(history, str | bytes | SavedHistory):
            return self._replay(_saved(history), source=None)
        items = list(history)
        if items and all(isinstance(h, str | bytes | SavedHistory) for h in items):
            return self.replay_all(cast("list[str | bytes | SavedHistory]", items))
        return self._replay(_saved(cast("list[HistoryEvent]", items)), source=None)

    def replay_all(
        self, histories: Iterable[HistoryInput | str | bytes | SavedHistory]
    ) -> ReplayReport:
        """Replay several histories; the report says which diverge."""
        return ReplayReport(tuple(self._replay(_saved(h), source=None) for h in histories))

    def replay_files(self, paths: Iterable[str]) -> ReplayReport:
        """Replay history files by path.

        Raises:
            OSError: a file cannot be read.
            ValueError: a file is not a history file (the message names it).
        """
        results = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            try:
                saved = load_history(text)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc
            results.append(self._replay(saved, source=str(path)))
        return ReplayReport(tuple(results))

    def _replay(self, saved: SavedHistory, *, source: str | None) -> HistoryReplay:
        workflow = self._workflows.get(saved.workflow)
        iid = saved.instance_id
        divergence: Divergence | None
        if workflow is None:
            known = ", ".join(sorted(self._workflows)) or "none"
            actual = f"no workflow {saved.workflow!r} is registered (registered: {known})"
            divergence = _divergence(iid, 0, f"ExecutionStarted({saved.workflow!r})", actual)
        else:
            divergence = _first_divergence(workflow, saved.events, iid)
        return HistoryReplay(iid, saved.workflow, divergence, source)


def _saved(history: HistoryInput) -> SavedHistory:
    if isinstance(history, SavedHistory):
        return history
    if isinstance(history, str | bytes):
        return load_history(history)
    return load_history(json.dumps([event_to_dict(e) for e in history]))


def _first_divergence(
    workflow: Callable[..., Any] | VersionedWorkflow,
    events: Sequence[HistoryEvent],
    instance_id: str,
) -> Divergence | None:
    execution = WorkflowExecution(workflow, instance_id=instance_id)
    for index, event in enumerate(events):
        before = None
        if isinstance(event, _ACTION_RECORDS):
            before = {a.id: a for a in execution.take_actions()}.get(event.event_id)
        execution.process([event], replaying=True)
        failure = execution.failure_exception
        if isinstance(failure, NonDeterminismError):
            actual = _describe_action(before) if before is not None else "called nothing there"
            return _divergence(instance_id, index, _describe_event(event), actual)
    last = len(events) - 1
    actions = execution.take_actions()
    settled = settle_turn(
        (),
        actions,
        recorded=execution.patches.recorded,
        recorded_name=execution.recorded_version_name,
        reported=execution.reported_version(),
    )
    if settled.stall is not None:
        recorded = f"version {execution.recorded_version_name!r} with patches " + (
            f"[{', '.join(execution.patches.recorded)}]"
        )
        actual = f"stalls there ({settled.stall.description.rstrip('.')})"
        return _divergence(instance_id, last, recorded, actual)
    ended = next(((i, e) for i, e in enumerate(events) if isinstance(e, ExecutionCompleted)), None)
    unrecorded = [a for a in actions if not isinstance(a, CompleteOrchestration)]
    if ended is None:
        if actions:
            return _divergence(
                instance_id,
                last,
                "nothing more (the instance was still running)",
                _describe_action(actions[0]),
            )
        return None
    index, completed = ended
    if unrecorded:
        return _divergence(
            instance_id,
            index,
            f"the end ({completed.status.name})",
            _describe_action(unrecorded[0]),
        )
    done = execution.completion
    if done is None:
        return _divergence(
            instance_id,
            index,
            f"the end ({completed.status.name})",
            "is still waiting (it did not finish)",
        )
    if done.status is not completed.status:
        return _divergence(
            instance_id, index, f"the end ({completed.status.name})", _describe_action(done)
        )
    results = (OrchestrationStatus.COMPLETED, OrchestrationStatus.CONTINUED_AS_NEW)
    if done.status in results and _json(done.result) != _json(completed.result):
        return _divergence(
            instance_id,
            index,
            f"the output {completed.result}",
            f"returned {done.result}",
        )
    return None


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _divergence(instance_id: str, index: int, recorded: str, actual: str) -> Divergence:
    message = (
        f"instance {instance_id!r}, event {index}: history recorded {recorded}, "
        f"but the workflow {actual} now"
    )
    return Divergence(instance_id, index, recorded, actual, message)


def _describe_event(event: HistoryEvent) -> str:
    name = getattr(event, "name", None)
    call = {
        TaskScheduled: "call_activity",
        TimerCreated: "create_timer",
        SubOrchestrationInstanceCreated: "call_child_workflow",
        EventSent: "send_event",
    }.get(type(event))
    what = f"{event.KIND} ({call}({name!r}))" if name else f"{event.KIND} ({call}())"
    return f"{what} at step {event.event_id}"


def _describe_action(action: Action) -> str:
    if isinstance(action, CompleteOrchestration):
        status = action.status.name
        if action.failure is not None:
            return (
                f"finished there ({status}: {action.failure.error_type}: {action.failure.message})"
            )
        return f"finished there ({status})"
    call = type(action).__name__
    for kind, name in (
        ("ScheduleTask", "call_activity"),
        ("CreateTimer", "create_timer"),
        ("CreateSubOrchestration", "call_child_workflow"),
        ("SendEvent", "send_event"),
    ):
        if call == kind:
            call = name
    target = getattr(action, "name", None)
    return f"called {call}({target!r})" if target else f"called {call}()"
