"""Builders for histories, and a driver that runs a workflow turn by turn as the runtime does."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from treadle.core import codec
from treadle.core.actions import Action, CompleteOrchestration, action_to_event
from treadle.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from treadle.core.replay import ReplayResult, WorkflowExecution, replay
from treadle.core.tasks import Task
from treadle.core.versioning import Stall, VersionedWorkflow, settle_turn
from treadle.errors import FailureDetails

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
INSTANCE = "o-1"
EXECUTION = "e-1"

R = TypeVar("R")
Workflow = Generator[Task[Any], Any, R]
"""What a workflow function returns: a generator that yields tasks, is sent their results
and returns the workflow's output, of type ``R``."""


def at(seconds: float) -> datetime:
    """The workflow clock ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def turn(when: datetime = T0) -> OrchestratorStarted:
    return OrchestratorStarted(timestamp=when)


def workflow_started(
    name: str = "wf",
    input: Any = None,
    *,
    instance_id: str = INSTANCE,
    execution_id: str = EXECUTION,
) -> ExecutionStarted:
    return ExecutionStarted(
        name=name, instance_id=instance_id, execution_id=execution_id, input=codec.encode(input)
    )


def start(name: str = "wf", input: Any = None, when: datetime = T0) -> list[HistoryEvent]:
    """The first turn's events: the clock, then ExecutionStarted."""
    return [turn(when), workflow_started(name, input)]


def task_scheduled(seq: int, name: str, input: Any = None) -> TaskScheduled:
    return TaskScheduled(
        event_id=seq,
        name=name,
        input=codec.encode(input),
        task_execution_id=f"{EXECUTION}:{seq}",
    )


def task_completed(seq: int, result: Any = None) -> TaskCompleted:
    return TaskCompleted(task_scheduled_id=seq, result=codec.encode(result))


def failure(message: str = "boom", error_type: str = "ValueError") -> FailureDetails:
    return FailureDetails(message=message, error_type=error_type, stack_trace="Traceback ...")


def task_failed(seq: int, message: str = "boom", error_type: str = "ValueError") -> TaskFailed:
    return TaskFailed(task_scheduled_id=seq, failure=failure(message, error_type))


def timer_created(seq: int, fire_at: datetime) -> TimerCreated:
    return TimerCreated(event_id=seq, fire_at=fire_at)


def timer_fired(seq: int, fire_at: datetime) -> TimerFired:
    return TimerFired(timer_id=seq, fire_at=fire_at)


def child_created(
    seq: int, name: str, instance_id: str, input: Any = None
) -> SubOrchestrationInstanceCreated:
    return SubOrchestrationInstanceCreated(
        event_id=seq, name=name, instance_id=instance_id, input=codec.encode(input)
    )


def child_completed(seq: int, result: Any = None) -> SubOrchestrationInstanceCompleted:
    return SubOrchestrationInstanceCompleted(task_scheduled_id=seq, result=codec.encode(result))


def child_failed(
    seq: int, message: str = "boom", error_type: str = "ValueError"
) -> SubOrchestrationInstanceFailed:
    return SubOrchestrationInstanceFailed(
        task_scheduled_id=seq, failure=failure(message, error_type)
    )


def event_raised(name: str, value: Any = None) -> EventRaised:
    return EventRaised(name=name, input=codec.encode(value))


def suspended() -> ExecutionSuspended:
    return ExecutionSuspended()


def resumed() -> ExecutionResumed:
    return ExecutionResumed()


def terminated(output: Any = None) -> ExecutionTerminated:
    return ExecutionTerminated(input=codec.encode(output))


def decoded_output(result: ReplayResult) -> Any:
    return codec.decode(result.output)


def completion_of(result: ReplayResult) -> CompleteOrchestration:
    """The final action of a finished run."""
    last = result.actions[-1]
    assert isinstance(last, CompleteOrchestration)
    return last


def failure_of(result: ReplayResult) -> FailureDetails:
    """The failure details that a failed run completes with."""
    failure = completion_of(result).failure
    assert failure is not None
    return failure


class Run:
    """Drives one workflow run turn by turn, the way the runtime's instance cache does.

    Each turn feeds ``OrchestratorStarted`` plus new events to one long-lived
    :class:`WorkflowExecution` (``replaying=False``), takes and confirms its actions, and
    appends what the engine would record to :attr:`history`. Every turn is also checked
    against a full :func:`replay` of the history so far: the cache must never change the
    outcome.
    """

    def __init__(
        self,
        workflow: Callable[..., Any] | VersionedWorkflow,
        input: Any = None,
        *,
        name: str = "wf",
        when: datetime = T0,
    ) -> None:
        self.workflow = workflow
        self.execution = WorkflowExecution(workflow, instance_id=INSTANCE)
        self.history: list[HistoryEvent] = []
        self.stall: Stall | None = None
        self.actions = self.turn(workflow_started(name, input), when=when)

    def turn(self, *events: HistoryEvent, when: datetime = T0) -> list[Any]:
        # list[Any]: tests unpack the actions and read the fields of the concrete kinds.
        assert not self.execution.is_complete, "the engine gives a finished run no more turns"
        assert self.stall is None, "the engine gives a stalled run no more turns"
        batch: list[HistoryEvent] = [turn(when), *events]
        expected = replay(self.workflow, self.history, batch, instance_id=INSTANCE)
        self.execution.process(batch, replaying=False)
        settled = settle_turn(
            batch,
            self.execution.take_actions(),
            recorded=self.execution.patches.recorded,
            recorded_name=self.execution.recorded_version_name,
            reported=self.execution.reported_version(),
        )
        actions = settled.actions
        assert_same_actions(actions, expected.actions)
        assert settled.stall == expected.stall
        if settled.stall is not None:
            # the engine records the stall alone: the events wait for a worker that can go on
            assert expected.status is OrchestrationStatus.STALLED
            self.stall = settled.stall
            self.history.append(settled.stall.to_event(when))
            return []
        self.execution.confirm_actions()
        assert self.execution.status() is expected.status
        self.history.extend(settled.new_events)
        for action in actions:
            event = action_to_event(action, when)
            if event is not None:
                self.history.append(event)
        return actions

    @property
    def result(self) -> ReplayResult:
        """A full replay of everything recorded so far."""
        return replay(self.workflow, self.history, instance_id=INSTANCE)


def assert_same_actions(got: Sequence[Action], expected: Sequence[Action]) -> None:
    """Actions are equal, except that failure stack traces may differ in their frames."""
    assert [_comparable(a) for a in got] == [_comparable(a) for a in expected]


def _comparable(action: Action) -> Any:
    failure = getattr(action, "failure", None)
    if failure is None:
        return action
    return (type(action), action.id, failure.error_type, failure.message)
