"""Replay: run a workflow generator against its history and new events, yielding actions.

A :class:`WorkflowExecution` is the in-memory state of one run of a workflow. It can be fed
events incrementally (the runtime keeps it cached between turns, so an N-step workflow costs
O(N)) or rebuilt from the whole history after a cache miss. :func:`replay` is the one-call
form used by tests and by tools.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import Any

from treadle.core import codec
from treadle.core.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ReportVersionNotAvailable,
    ScheduleTask,
    SendEvent,
)
from treadle.core.context import WorkflowContext
from treadle.core.history import (
    EPOCH,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStalled,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInfo,
    Propagation,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    WorkflowVersion,
    run_timeout_failure,
)
from treadle.core.inputs import accepts_input as accepts_input
from treadle.core.inputs import call_with_input
from treadle.core.legacy_timeouts import LegacyTimeouts, shift_actions, shift_keys
from treadle.core.propagation import PropagatedHistory
from treadle.core.records import record_class
from treadle.core.retry import POISONED, RetryPolicy
from treadle.core.tasks import CompletableTask, Task
from treadle.core.validation import default_child_id, validate_instance_id, validate_name
from treadle.core.versioning import Patches, Stall, VersionedWorkflow, settle_turn
from treadle.errors import (
    FailureDetails,
    NonDeterminismError,
    RegistrationError,
    TaskTimeoutError,
)

logger = logging.getLogger("treadle.workflow")


# What workflow code raising fails its instance with: SystemExit too (sys.exit() in the
# code, say), which would otherwise end the runtime's thread that ran the turn and stall
# every instance behind it. Not KeyboardInterrupt: a start's first turn may run on the
# program's main thread, where Ctrl-C must still stop the program.
_WORKFLOW_ERRORS = (Exception, SystemExit)


def failure_from_exception(exc: BaseException) -> FailureDetails:
    """Failure details (type name, message, traceback) of an exception; never raises, even
    for an exception whose ``__str__`` does (that would end the thread reporting it)."""
    try:
        message = str(exc)
    except Exception as broken:
        message = f"<{type(exc).__name__} whose str() raised {type(broken).__name__}>"
    try:
        trace: str | None = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        trace = None
    return FailureDetails(message=message, error_type=type(exc).__name__, stack_trace=trace)


class _ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that says nothing while the workflow replays."""

    def __init__(self, execution: WorkflowExecution) -> None:
        super().__init__(logger, {})
        # (weak: the execution keeps its logger, which must not keep it, see its __init__)
        self._execution = weakref.ref(execution)

    def isEnabledFor(self, level: int) -> bool:  # logging's name
        execution = self._execution()
        replaying = execution is not None and execution.is_replaying
        return not replaying and super().isEnabledFor(level)


@record_class(frozen=False)
class _Retry:
    """A retryable call in flight: the action to repeat and how often it failed."""

    task: CompletableTask[Any]
    action: ScheduleTask | CreateSubOrchestration
    policy: RetryPolicy
    first_attempt_at: datetime
    attempts: int = 1


@record_class
class ReplayResult:
    """The outcome of :func:`replay`.

    Attributes:
        actions: the new actions the workflow asked for, by id.
        status: RUNNING, or the final status if the workflow finished.
        output: the JSON text of the result, if completed.
        failure: the error that failed the workflow, if it failed.
        custom_status: the JSON text of the custom status, if set.
        version: what the turn records in its ``OrchestratorStarted``: the version name and
            the patches new in this turn (None if neither).
        stall: why the instance stalls instead of going on (then ``status`` is STALLED and
            ``actions`` is empty), or None.
    """

    actions: list[Action]
    status: OrchestrationStatus
    output: str | None = None
    failure: BaseException | None = None
    custom_status: str | None = None
    version: WorkflowVersion | None = None
    stall: Stall | None = None


@record_class(frozen=False)
class _EventBuffer:
    """The external events of one replay: who waits for which, and those not yet waited for."""

    waiters: dict[str, deque[CompletableTask[Any]]] = field(default_factory=dict)
    received: dict[str, deque[tuple[int, str, str | None]]] = field(default_factory=dict)
    """Events nobody waited for yet, by lower-cased name: (arrival number, name, data)."""
    arrivals: int = 0

    def keep(self, key: str, name: str, data: str | None) -> None:
        """Keep an event for a later wait, numbered in order of arrival."""
        self.arrivals += 1
        self.received.setdefault(key, deque()).append((self.arrivals, name, data))

    def in_arrival_order(self) -> list[tuple[str, str | None]]:
        """Every kept event, (name, data), in the order they arrived, whatever their names."""
        kept = sorted(entry for queue in self.received.values() for entry in queue)
        return [(name, data) for _, name, data in kept]


_NO_IDS: frozenset[int] = frozenset()


def _with(ids: set[int] | frozenset[int], new: int) -> set[int]:
    """``ids`` with ``new`` added: ``ids`` itself if a set, else a new set."""
    if isinstance(ids, frozenset):
        return {*ids, new}
    ids.add(new)
    return ids


def _discard(ids: set[int] | frozenset[int], old: int) -> None:
    """Remove ``old`` from ``ids`` if there (then a set: a frozenset here is empty)."""
    if isinstance(ids, set):
        ids.discard(old)


class WorkflowExecution:
    """The live state of one run of a workflow: its generator, pending tasks and actions.

    ``workflow`` is the workflow function, or a :class:`VersionedWorkflow` whose version is
    chosen when the run starts: the one its history recorded, else the latest.
    """

    # (slots: a runtime may hold thousands at once, e.g. a backlog claimed together)
    __slots__ = (
        "__weakref__",
        "_continue_as_new",
        "_current",
        "_event_timeouts",
        "_events",
        "_generator",
        "_legacy",
        "_logger",
        "_pending_actions",
        "_propagated_view",
        "_resolve_workflow",
        "_retries",
        "_retry_timers",
        "_sequence",
        "_suspended_events",
        "_tasks",
        "_timed_calls",
        "_timeout_events",
        "app_id",
        "child_instance_ids",
        "completion",
        "current_utc_datetime",
        "custom_status",
        "execution_id",
        "failure_exception",
        "instance_id",
        "is_replaying",
        "is_suspended",
        "name",
        "parent",
        "patches",
        "propagated",
        "recorded_version_name",
        "started_at",
        "timed_out_tasks",
        "timeout_at",
        "version_name",
        "version_unavailable",
        "workflow",
    )

    def __init__(
        self,
        workflow: Callable[..., Any] | VersionedWorkflow,
        *,
        instance_id: str,
        resolve_workflow: Callable[[str], Callable[..., Any] | None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.instance_id = instance_id
        self.execution_id = ""
        self.name = ""
        self.parent: ParentInfo | None = None
        self.propagated: Propagation | None = None
        self._propagated_view: PropagatedHistory | None = None
        self.app_id: str | None = None  # the app this run belongs to, from ExecutionStarted
        self.timeout_at: datetime | None = None  # the run's deadline, from ExecutionStarted
        self.started_at: datetime = EPOCH  # when the run started, from ExecutionStarted
        self.child_instance_ids: list[str] = []
        self.current_utc_datetime: datetime = EPOCH
        self.is_replaying = False
        self.custom_status: str | None = None
        self.is_suspended = False
        self.completion: CompleteOrchestration | None = None
        self.failure_exception: BaseException | None = None
        self.version_name: str | None = None  # the version run, for a versioned workflow
        self.recorded_version_name: str | None = None  # the one the first turn recorded
        self.patches = Patches()
        self.version_unavailable = False
        # (the logger made at first use, holding this weakly; the context handed to the code
        # only, not kept here: a finished execution is no reference cycle and is freed when
        # dropped, not by the cyclic collector, which may let thousands pile up)
        self._logger: _ReplaySafeLogger | None = None
        self._resolve_workflow = resolve_workflow
        self._sequence = 0
        self._pending_actions: dict[int, Action] = {}
        self._tasks: dict[int, CompletableTask[Any]] = {}
        self._retries: dict[int, _Retry] = {}
        self._retry_timers: dict[int, _Retry] = {}
        self._event_timeouts: dict[int, tuple[str, CompletableTask[Any]]] = {}
        # (these two stay the shared empty frozenset until a first id: most runs have none)
        self._timed_calls: set[int] | frozenset[int] = _NO_IDS  # activity calls with a timeout
        self.timed_out_tasks: set[int] | frozenset[int] = _NO_IDS
        """Activity calls (ids) whose timeout passed: their late results are dropped."""
        self._timeout_events: list[HistoryEvent] = []  # the failures that recorded them
        self._legacy = LegacyTimeouts()  # timeouts recorded as timers (schema 8 and before)
        self._events = _EventBuffer()
        self._suspended_events: list[HistoryEvent] = []
        self._generator: Generator[Any, Any, Any] | None = None
        self._current: Task[Any] | None = None
        self._continue_as_new: tuple[str | None, bool] | None = None

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """The run's logger: silent while the run replays (made at first use)."""
        made = self._logger
        if made is None:
            made = self._logger = _ReplaySafeLogger(self)
        return made

    @property
    def versioned(self) -> bool:
        """Whether the run's turns have a version or patches to check against history and
        record (:func:`~treadle.core.versioning.settle_turn`): it runs a version, its code
        found a patch or its history recorded one, or there is no code for its recorded
        version. False: a turn settles as it is."""
        patches = self.patches
        return (
            self.version_name is not None
            or self.version_unavailable
            or bool(patches.found)
            or bool(patches.recorded)
        )

    # ---- feeding events -------------------------------------------------------------
    def process(self, events: Iterable[HistoryEvent], *, replaying: bool) -> None:
        """Apply events in order; ``replaying`` marks them as already-recorded history."""
        self.is_replaying = replaying
        for event in events:
            try:
                self._apply(event)
            except NonDeterminismError as exc:
                self._fail(exc)
        self.is_replaying = False

    def take_actions(self) -> list[Action]:
        """The actions asked for and not yet recorded in history, ordered by id."""
        return [self._pending_actions[k] for k in sorted(self._pending_actions)]

    def confirm_actions(self) -> None:
        """Mark every pending action, and the turn's new patches, as recorded (after the
        engine committed them)."""
        self._pending_actions.clear()
        self.patches.confirm()

    def reported_version(self) -> WorkflowVersion | None:
        """The version this run runs and every patch its code found true, in order (what an
        SDK worker reports at the end of a turn); None if neither."""
        if self.version_name is None and not self.patches.found:
            return None
        return WorkflowVersion(self.version_name, tuple(self.patches.found))

    def awaited_event_names(self) -> list[str]:
        """The names (lower-cased) of the external events the code waits for now, sorted."""
        return sorted(name for name, waiters in self._events.waiters.items() if waiters)

    def without_late_results(self, events: list[HistoryEvent]) -> list[HistoryEvent]:
        """``events`` without the results of activity calls that ran past their timeout
        (dropped, not recorded: replay reaches the same state without them)."""
        late = self.timed_out_tasks
        kept = {id(e) for e in self._timeout_events}  # (the timeouts themselves stay)
        self._timeout_events.clear()
        return [
            e
            for e in events
            if not (isinstance(e, TaskCompleted | TaskFailed) and e.task_scheduled_id in late)
            or id(e) in kept
        ]

    @property
    def is_complete(self) -> bool:
        """Whether the run has finished (any final status)."""
        return self.completion is not None

    def _apply(self, event: HistoryEvent) -> None:
        # Action records still follow a completion (what the code did in its last turn, or
        # history the changed code never reached) and are never held while suspended: they
        # record what the code already did, and holding them would re-issue those actions.
        is_record = isinstance(event, _ACTION_RECORDS)
        if self.version_unavailable:
            self._apply_without_code(event)
            return
        if self.completion is not None and not (
            is_record or isinstance(event, OrchestratorStarted)
        ):
            if isinstance(event, EventRaised):
                self._carry_over(event)
            return
        if self.is_suspended and not (
            is_record
            or isinstance(event, ExecutionResumed | ExecutionTerminated | OrchestratorStarted)
        ):
            self._suspended_events.append(event)
            return
        match event:
            case OrchestratorStarted():
                self._on_turn(event)
            case ExecutionStarted():
                self._on_started(event)
            case TaskScheduled():
                self._match_action(event, ScheduleTask, event.name)
            case TimerCreated():
                self._on_timer_created(event)
            case SubOrchestrationInstanceCreated():
                self._match_action(event, CreateSubOrchestration, event.name)
            case EventSent():
                self._match_action(event, SendEvent, event.name)
            case TaskCompleted() | SubOrchestrationInstanceCompleted():
                self._on_result(event.task_scheduled_id, event.result)
            case TaskFailed():
                self._on_task_failed(event)
            case SubOrchestrationInstanceFailed():
                self._on_failure(event.task_scheduled_id, event.failure)
            case TimerFired():
                self._on_timer_fired(event)
            case EventRaised():
                self._on_event_raised(event)
            case ExecutionSuspended():
                self.is_suspended = True
            case ExecutionResumed():
                self._on_resumed()
            case ExecutionTerminated():
                self._on_terminated(event)
            case OrchestratorCompleted() | ExecutionCompleted() | ExecutionStalled():
                pass
            case _:
                raise AssertionError(f"unhandled event {type(event).__name__}")

    def _apply_without_code(self, event: HistoryEvent) -> None:
        # No code for the recorded version: events wait in the inbox for a worker that has
        # it, but a termination needs no code.
        if isinstance(event, OrchestratorStarted):
            self._on_turn(event)
        elif isinstance(event, ExecutionTerminated) and self.completion is None:
            self._pending_actions.clear()
            self.version_unavailable = False
            self._on_terminated(event)

    def _on_terminated(self, event: ExecutionTerminated) -> None:
        if event.timed_out:  # the run's timeout passed: it fails, as a TimeoutError
            failure = run_timeout_failure(self.name, self.timeout_at)
            self._complete(OrchestrationStatus.FAILED, failure=failure, stop=True)
        else:
            self._complete(OrchestrationStatus.TERMINATED, result=event.input)

    # ---- handlers ----------------------------------------------------------------------
    def _on_turn(self, event: OrchestratorStarted) -> None:
        self.current_utc_datetime = event.timestamp
        version = event.version
        if version is not None:
            self.patches.on_turn(version)
            if self.recorded_version_name is None and not self.name:
                self.recorded_version_name = version.name

    def _on_started(self, event: ExecutionStarted) -> None:
        self.name = event.name
        self.parent = event.parent
        self.propagated = event.propagated
        self.app_id = event.app_id
        self.timeout_at = event.timeout_at
        self.started_at = event.timestamp
        self.execution_id = event.execution_id
        self.instance_id = event.instance_id or self.instance_id
        workflow = self.workflow
        if isinstance(workflow, VersionedWorkflow):
            try:
                resolved = workflow.resolve(self.recorded_version_name)
            except RegistrationError as exc:
                self._fail(exc)
                return
            if resolved is None:
                self.version_unavailable = True
                action_id = self._next_id()
                self._pending_actions[action_id] = ReportVersionNotAvailable(id=action_id)
                return
            self.version_name, workflow = resolved
        try:
            out = call_with_input(workflow, WorkflowContext(self), event.input)
        except _WORKFLOW_ERRORS as exc:
            self._fail(exc)
            return
        if inspect.isgenerator(out):
            self._generator = out
            self._resume(first=True)
        else:
            self._finish(out)

    def _match_action(self, event: HistoryEvent, expected: type[Action], name: str | None) -> None:
        action = self._pending_actions.pop(event.event_id, None)
        if action is None:
            self._discard_completion()
            raise NonDeterminismError(
                f"instance {self.instance_id!r}, step {event.event_id}: history has "
                f"{_describe_event(event)} "
                "but the workflow did not call anything at that step; the workflow code "
                "changed while the instance was running: version it or start a new instance"
            )
        if not isinstance(action, expected) or (
            name is not None and getattr(action, "name", None) != name
        ):
            self._discard_completion()
            raise NonDeterminismError(
                f"instance {self.instance_id!r}, step {event.event_id}: history has "
                f"{_describe_event(event)} "
                f"but the workflow {_describe_action(action)}; the workflow code "
                "changed while the instance was running: version it or start a new instance"
            )
        self._legacy.on_record(action)

    def _on_timer_created(self, event: TimerCreated) -> None:
        # A timer right after a timed call may be that call's timeout, recorded as a timer
        # by the code of schema 8 and before (see treadle.core.legacy_timeouts).
        pending = self._pending_actions.get(event.event_id)
        taken = self._legacy.timer_created(event, pending, self.current_utc_datetime)
        if taken is None:
            self._match_action(event, CreateTimer, None)
            return
        self._shift_ids(taken)
        _discard(self._timed_calls, self._legacy.timers[taken].task_id)  # (not the store's)

    def _shift_ids(self, first: int) -> None:
        """Move every action the code made from id ``first`` on (none recorded yet) up one id,
        and what is kept by their ids with them."""
        self._sequence += 1
        self._pending_actions, renamed = shift_actions(
            self._pending_actions, first, self.instance_id, self.execution_id
        )
        self.child_instance_ids = [renamed.get(c, c) for c in self.child_instance_ids]
        if self.completion is not None and self.completion.id >= first:
            completion = self._pending_actions[self.completion.id + 1]
            assert isinstance(completion, CompleteOrchestration)
            self.completion = completion
        self._tasks = shift_keys(self._tasks, first)
        self._retries = shift_keys(self._retries, first)
        self._retry_timers = shift_keys(self._retry_timers, first)
        self._event_timeouts = shift_keys(self._event_timeouts, first)
        self._timed_calls = {i + 1 if i >= first else i for i in self._timed_calls}
        for retry in {
            id(r): r for r in (*self._retries.values(), *self._retry_timers.values())
        }.values():
            if retry.action.id >= first:  # (the attempt the code has just made)
                action = self._pending_actions[retry.action.id + 1]
                assert isinstance(action, ScheduleTask | CreateSubOrchestration)
                retry.action = action

    def _discard_completion(self) -> None:
        # History records an action the code did not make. If the code has already finished,
        # that completion was never committed: drop it so the non-determinism failure stands.
        # A termination came from outside and stays.
        completion = self.completion
        if completion is None or completion.status is OrchestrationStatus.TERMINATED:
            return
        self._pending_actions.pop(completion.id, None)
        self.completion = None
        self.failure_exception = None

    def _carry_over(self, event: EventRaised) -> None:
        # An event after continue_as_new(save_events=True) in the same batch must reach the
        # next run too: the engine consumes the whole batch.
        completion = self.completion
        if (
            completion is None
            or completion.status is not OrchestrationStatus.CONTINUED_AS_NEW
            or self._continue_as_new is None
            or not self._continue_as_new[1]
            or completion.id not in self._pending_actions
        ):
            return
        carried = EventRaised(name=event.name, input=event.input)
        self.completion = dataclasses.replace(
            completion, carryover_events=(*completion.carryover_events, carried)
        )
        self._pending_actions[completion.id] = self.completion

    def _on_result(self, task_id: int, result: str | None) -> None:
        if task_id in self._timed_calls:
            _discard(self._timed_calls, task_id)
        task = self._tasks.pop(task_id, None)
        self._retries.pop(task_id, None)
        if task is None:
            return  # a duplicate or stale result (at-least-once), or one after its timeout
        try:
            value = codec.decode(result)
        except Exception as exc:
            task.fail_with(exc)
        else:
            task.complete(value)
        self._resume_if_ready()

    def _on_task_failed(self, event: TaskFailed) -> None:
        """An activity attempt failed; one with a timeout that failed with a TimeoutError
        ran past it (the store fails an attempt still running at its deadline: see
        :mod:`treadle.store.deadlines`), and its result, should it come later, is dropped."""
        task_id = event.task_scheduled_id
        timed_out = (
            task_id in self._timed_calls
            and task_id in self._tasks
            and event.failure.error_type == "TimeoutError"
        )
        _discard(self._timed_calls, task_id)
        if timed_out:
            self.timed_out_tasks = _with(self.timed_out_tasks, task_id)
            self._timeout_events.append(event)
        self._on_failure(task_id, event.failure, timed_out=timed_out)

    def _on_failure(
        self, task_id: int, failure: FailureDetails, *, timed_out: bool = False
    ) -> None:
        task = self._tasks.pop(task_id, None)
        if task is None:
            return
        retry = self._retries.pop(task_id, None)
        if retry is not None and failure.error_type != POISONED:  # (its attempts are spent)
            delay = retry.policy.next_delay(
                retry.attempts, retry.first_attempt_at, self.current_utc_datetime
            )
            if delay is not None:
                timer_id = self._next_id()
                fire_at = self.current_utc_datetime + delay
                self._pending_actions[timer_id] = CreateTimer(id=timer_id, fire_at=fire_at)
                self._retry_timers[timer_id] = retry
                return
        message = f"{failure.error_type}: {failure.message}"
        if timed_out:
            task.fail_with(TaskTimeoutError(message, failure))
        else:
            task.fail(message, failure)
        self._resume_if_ready()

    def _on_timer_fired(self, event: TimerFired) -> None:
        retry = self._retry_timers.pop(event.timer_id, None)
        if retry is not None:
            retry.attempts += 1
            new_id = self._next_id()
            action = dataclasses.replace(retry.action, id=new_id)  # same call, same app
            retry.action = action
            self._pending_actions[new_id] = action
            self._tasks[new_id] = retry.task
            self._retries[new_id] = retry
            if isinstance(action, ScheduleTask) and action.timeout is not None:
                self._timed_calls = _with(self._timed_calls, new_id)
            return
        legacy = self._legacy.timers.pop(event.timer_id, None)
        if legacy is not None:
            self._on_legacy_timeout(legacy.task_id, legacy.timeout, legacy.name)
            return
        timeout = self._event_timeouts.pop(event.timer_id, None)
        if timeout is not None:
            key, waiter = timeout
            queue = self._events.waiters.get(key)
            if queue is not None and waiter in queue:
                queue.remove(waiter)
                waiter.fail_with(TimeoutError(f"timed out waiting for external event {key!r}"))
                self._resume_if_ready()
            return
        task = self._tasks.pop(event.timer_id, None)
        if task is not None:
            task.complete(None)
            self._resume_if_ready()

    def _on_legacy_timeout(self, task_id: int, timeout: timedelta, name: str) -> None:
        """The attempt ``task_id`` has run past the timeout a timer of an old history kept:
        fail it (a retry follows under its policy); its result, should it come later, is
        dropped."""
        if task_id not in self._tasks:
            return  # it finished in time
        self.timed_out_tasks = _with(self.timed_out_tasks, task_id)
        failure = FailureDetails(
            f"activity {name!r} (step {task_id}) did not finish within its timeout of "
            f"{timeout}; it was told to stop, and its result, if it comes, is dropped",
            "TimeoutError",
        )
        self._on_failure(task_id, failure, timed_out=True)

    def _on_event_raised(self, event: EventRaised) -> None:
        key = event.name.lower()
        queue = self._events.waiters.get(key)
        if queue:
            waiter = queue.popleft()
            try:
                waiter.complete(codec.decode(event.input))
            except Exception as exc:
                waiter.fail_with(exc)
            self._resume_if_ready()
        else:
            self._events.keep(key, event.name, event.input)

    def _on_resumed(self) -> None:
        self.is_suspended = False
        held, self._suspended_events = self._suspended_events, []
        for event in held:
            self._apply(event)

    # ---- the generator ---------------------------------------------------------------
    def _resume_if_ready(self) -> None:
        if self._current is not None and self._current.is_complete:
            self._resume(first=False)

    def _resume(self, *, first: bool) -> None:
        gen = self._generator
        assert gen is not None
        while True:
            try:
                if first:
                    first = False
                    yielded = gen.send(None)
                else:
                    task = self._current
                    assert task is not None
                    if task.is_failed:
                        yielded = gen.throw(task.get_exception())
                    else:
                        yielded = gen.send(task.get_result())
            except StopIteration as stop:
                self._current = None
                self._finish(stop.value)
                return
            except _WORKFLOW_ERRORS as exc:
                self._current = None
                self._fail(exc)
                return
            if not isinstance(yielded, Task):
                self._current = None
                self._fail(
                    TypeError(
                        f"workflow {self.name!r} yielded {type(yielded).__name__}; yield only "
                        "tasks from ctx.call_activity, ctx.create_timer, "
                        "ctx.wait_for_external_event, ctx.call_child_workflow, "
                        "when_all or when_any"
                    )
                )
                return
            self._current = yielded
            if not yielded.is_complete:
                return

    def _finish(self, value: Any) -> None:
        if self._continue_as_new is not None:
            new_input, save_events = self._continue_as_new
            carry: tuple[EventRaised, ...] = ()
            if save_events:
                # in the order they were raised: the next run sees them as this one did
                carry = tuple(
                    EventRaised(name=name, input=data)
                    for name, data in self._events.in_arrival_order()
                )
            self._complete(OrchestrationStatus.CONTINUED_AS_NEW, result=new_input, carryover=carry)
            return
        try:
            encoded = codec.encode(value)
        except Exception as exc:
            self._fail(exc)
            return
        self._complete(OrchestrationStatus.COMPLETED, result=encoded)

    def _fail(self, exc: BaseException) -> None:
        if self.completion is not None:
            return
        self.failure_exception = exc
        self._complete(OrchestrationStatus.FAILED, failure=failure_from_exception(exc))

    def _complete(
        self,
        status: OrchestrationStatus,
        *,
        result: str | None = None,
        failure: FailureDetails | None = None,
        carryover: tuple[EventRaised, ...] = (),
        stop: bool = False,
    ) -> None:
        if self.completion is not None:
            return
        stop = stop or status is OrchestrationStatus.TERMINATED
        if self._generator is not None and stop:
            try:  # (runs the code's finally blocks)
                self._generator.close()
            except _WORKFLOW_ERRORS as exc:  # it yielded again, or raised: terminated anyway
                logger.warning(
                    "workflow instance %s did not stop cleanly when terminated (%s: %s); "
                    "terminated anyway",
                    self.instance_id,
                    type(exc).__name__,
                    failure_from_exception(exc).message,
                )
        action_id = self._next_id()
        self.completion = CompleteOrchestration(
            id=action_id, status=status, result=result, failure=failure, carryover_events=carryover
        )
        self._pending_actions[action_id] = self.completion

    # ---- what the context calls --------------------------------------------------------
    def _next_id(self) -> int:
        self._sequence += 1
        return self._sequence

    def call_activity(
        self,
        name: str,
        value: Any,
        retry_policy: RetryPolicy | None,
        propagation_scope: int = 0,
        *,
        app_id: str | None = None,
        timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
    ) -> Task[Any]:
        """Record a ScheduleTask action (for ``app_id``'s workers, if given), each attempt
        of which the store fails with a TimeoutError once it has run for ``timeout``; return
        its task."""
        if timeout is not None or heartbeat_timeout is not None:  # (most calls have none)
            _check_timeout(timeout, "an activity's")
            _check_timeout(heartbeat_timeout, "an activity's heartbeat")
        action_id = self._next_id()
        action = ScheduleTask(
            id=action_id,
            name=name,
            input=codec.encode(value),
            task_execution_id=f"{self.execution_id}:{action_id}",
            propagation_scope=propagation_scope,
            app_id=app_id,
            heartbeat_timeout=heartbeat_timeout,
            timeout=timeout,
        )
        if timeout is not None:
            self._timed_calls = _with(self._timed_calls, action_id)
        return self._schedule(action, retry_policy)

    def call_child_workflow(
        self,
        name: str,
        value: Any,
        instance_id: str | None,
        retry_policy: RetryPolicy | None,
        propagation_scope: int = 0,
        *,
        app_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> Task[Any]:
        """Record a CreateSubOrchestration action (for ``app_id``'s workers, if given); return
        its task."""
        _check_timeout(timeout, "a child workflow's")
        validate_name(name, "child workflow name")
        if instance_id:
            validate_instance_id(instance_id, "child workflow instance id")
        action_id = self._next_id()
        child_id = instance_id or default_child_id(self.instance_id, action_id)
        self.child_instance_ids.append(child_id)
        action = CreateSubOrchestration(
            id=action_id,
            name=name,
            instance_id=child_id,
            input=codec.encode(value),
            propagation_scope=propagation_scope,
            app_id=app_id,
            timeout=timeout,
        )
        return self._schedule(action, retry_policy)

    def propagated_history(self) -> PropagatedHistory | None:
        """The query view of the history propagated to this run, if any."""
        if self.propagated is None:
            return None
        if self._propagated_view is None:
            self._propagated_view = PropagatedHistory.from_propagation(self.propagated)
        return self._propagated_view

    def _schedule(
        self,
        action: ScheduleTask | CreateSubOrchestration,
        retry_policy: RetryPolicy | None,
    ) -> Task[Any]:
        task: CompletableTask[Any] = CompletableTask()
        self._pending_actions[action.id] = action
        self._tasks[action.id] = task
        if retry_policy is not None:
            self._retries[action.id] = _Retry(
                task=task,
                action=action,
                policy=retry_policy,
                first_attempt_at=self.current_utc_datetime,
            )
        return task

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]:
        """Record a CreateTimer action and return its task."""
        if isinstance(fire_at, timedelta):
            fire_at = self.current_utc_datetime + fire_at
        elif not isinstance(fire_at, datetime):
            raise TypeError(
                f"create_timer takes a datetime (UTC) or a timedelta, not {type(fire_at).__name__}"
            )
        elif fire_at.tzinfo is None:
            raise ValueError("create_timer needs a timezone-aware datetime (UTC) or a timedelta")
        action_id = self._next_id()
        self._pending_actions[action_id] = CreateTimer(id=action_id, fire_at=fire_at)
        task: CompletableTask[None] = CompletableTask()
        self._tasks[action_id] = task
        return task

    def wait_for_external_event(self, name: str, timeout: timedelta | None) -> CompletableTask[Any]:
        """Return a task completed by the next event of that name (case-insensitive)."""
        if not isinstance(name, str):
            raise TypeError(f"an event name is a str, not {type(name).__name__}")
        if timeout is not None and not isinstance(timeout, timedelta):
            raise TypeError(
                f"wait_for_external_event's timeout is a timedelta, not {type(timeout).__name__}"
            )
        key = name.lower()
        task: CompletableTask[Any] = CompletableTask()
        received = self._events.received.get(key)
        if received:
            _, _, data = received.popleft()
            if not received:
                del self._events.received[key]
            try:
                task.complete(codec.decode(data))
            except Exception as exc:
                task.fail_with(exc)
            return task
        self._events.waiters.setdefault(key, deque()).append(task)
        if timeout is not None:
            timer_id = self._next_id()
            fire_at = self.current_utc_datetime + timeout
            self._pending_actions[timer_id] = CreateTimer(id=timer_id, fire_at=fire_at)
            self._event_timeouts[timer_id] = (key, task)
        return task

    def continue_as_new(self, new_input: Any, save_events: bool) -> None:
        """Arrange for the run to restart with ``new_input`` when the code returns."""
        self._continue_as_new = (codec.encode(new_input), save_events)

    def set_custom_status(self, value: Any) -> None:
        """Set the custom status (JSON-encoded)."""
        self.custom_status = codec.encode(value)

    def is_patched(self, name: str) -> bool:
        """Whether the code takes the patched path named ``name`` (see :class:`Patches`)."""
        if not isinstance(name, str):
            raise TypeError(f"a patch name is a str, not {type(name).__name__}")
        return self.patches.is_patched(name, replaying=self.is_replaying)

    def status(self) -> OrchestrationStatus:
        """RUNNING, SUSPENDED, STALLED (no code for the recorded version), or the final
        status."""
        if self.completion is not None:
            return self.completion.status
        if self.version_unavailable:
            return OrchestrationStatus.STALLED
        return OrchestrationStatus.SUSPENDED if self.is_suspended else OrchestrationStatus.RUNNING


ZERO = timedelta(0)


def _check_timeout(timeout: timedelta | None, whose: str) -> None:
    if timeout is not None and (not isinstance(timeout, timedelta) or timeout <= ZERO):
        raise ValueError(f"{whose} timeout is a positive timedelta, not {timeout!r}")


_ACTION_RECORDS = (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent)


def _describe_event(event: HistoryEvent) -> str:
    name = getattr(event, "name", None)
    return f"{event.KIND}({name!r})" if name else f"{event.KIND}()"


_ACTION_CALLS = {
    ScheduleTask: "call_activity",
    CreateTimer: "create_timer",
    CreateSubOrchestration: "call_child_workflow",
    SendEvent: "send_event",
}


def _describe_action(action: Action) -> str:
    if isinstance(action, CompleteOrchestration):
        return f"finished there ({action.status.name})"
    call = _ACTION_CALLS.get(type(action), type(action).__name__)
    name = getattr(action, "name", None)
    return f"called {call}({name!r})" if name else f"called {call}()"


def replay(
    workflow: Callable[..., Any] | VersionedWorkflow,
    history: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent] = (),
    *,
    instance_id: str = "",
) -> ReplayResult:
    """Run ``workflow`` over recorded ``history`` then ``new_events``; return what it asks.

    A pure function: no I/O, no clock. The actions returned are those not yet recorded. The
    turn is checked against history as the engine checks it before committing
    (:func:`~treadle.core.versioning.settle_turn`): if it would stall the instance,
    ``stall`` says why and no actions are returned.
    """
    execution = WorkflowExecution(workflow, instance_id=instance_id)
    execution.process(history, replaying=True)
    execution.process(new_events, replaying=False)
    settled = settle_turn(
        new_events,
        execution.take_actions(),
        recorded=execution.patches.recorded,
        recorded_name=execution.recorded_version_name,
        reported=execution.reported_version(),
    )
    version = next(
        (e.version for e in settled.new_events if isinstance(e, OrchestratorStarted)), None
    )
    if settled.stall is not None:
        return ReplayResult(
            actions=[],
            status=OrchestrationStatus.STALLED,
            custom_status=execution.custom_status,
            stall=settled.stall,
        )
    completion = execution.completion
    return ReplayResult(
        actions=settled.actions,
        status=execution.status(),
        output=completion.result if completion is not None else None,
        failure=execution.failure_exception,
        custom_status=execution.custom_status,
        version=version,
    )
