"""Turning a workflow turn's actions into one atomic store commit.

Local workflows and SDK workers (``treadle serve``) both end a turn with a list of actions;
this module is the single place that turns them into history events, activity tasks, timers,
child instances and messages, so both are committed the same way. The commits of turns
that run no workflow code (failures, stalls) are :mod:`treadle.runtime.codeless_turns`.

Threads: any. These are functions of their arguments only (no state; the caller gives the
turn's time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field
from datetime import datetime

from treadle.core.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    SendEvent,
    action_to_event,
)
from treadle.core.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    ParentInfo,
    Propagation,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerFired,
)
from treadle.core.propagation import assemble, carried_over
from treadle.core.records import record_class
from treadle.errors import FailureDetails
from treadle.store.base import (
    NewActivity,
    NewInstance,
    NewMessage,
    TurnCommit,
    new_execution_id,
)


@record_class(frozen=False)
class TurnInput:
    """What a turn starts from.

    Attributes:
        instance_id: the instance.
        name: the workflow name.
        execution_id: the current run.
        version: the instance version the turn was computed from.
        history_len: events already stored for the run.
        parent: the parent, for a child workflow.
        created_children: ids of children this run created (for recursive terminate).
        app_id: the app the instance belongs to ("" for none): where its calls that name
            no app go.
    """

    instance_id: str
    name: str
    execution_id: str
    version: int
    history_len: int
    parent: ParentInfo | None = None
    created_children: list[str] = field(default_factory=list)
    app_id: str = ""


@record_class
class PropagationInput:
    """What a turn that propagates history builds it from (see
    :mod:`treadle.core.propagation`).

    Attributes:
        past: the run's stored history (the turn's new events follow it).
        received: the history the run itself received, if any.
        app_id: the app the workflow runs in.
    """

    past: Sequence[HistoryEvent]
    received: Propagation | None
    app_id: str


def needs_past(actions: Sequence[Action], received: Propagation | None) -> bool:
    """Whether building a turn with ``actions`` needs a :class:`PropagationInput`: a call
    propagates history, or the run continues as new with a history it received."""
    for action in actions:
        if isinstance(action, ScheduleTask | CreateSubOrchestration) and action.propagation_scope:
            return True
        if (
            isinstance(action, CompleteOrchestration)
            and action.status is OrchestrationStatus.CONTINUED_AS_NEW
            and received is not None
        ):
            return True
    return False


def _propagated(
    propagation: PropagationInput | None,
    scope: int,
    turn: TurnInput,
    events: Sequence[HistoryEvent],
) -> Propagation | None:
    """The history a call of the turn propagates: the run's events up to the call's own
    (the last of ``events``)."""
    if not scope:
        return None
    if propagation is None:
        raise AssertionError("a turn that propagates history is built with its run's history")
    return assemble(
        scope,
        own_events=[*propagation.past, *events],
        received=propagation.received,
        app_id=propagation.app_id,
        instance_id=turn.instance_id,
    )


@record_class(frozen=False)
class TurnOutput:
    """A built turn: the commit, plus what the runtime must do once it is committed.

    Attributes:
        commit: the store commit.
        activities: ScheduleTask actions enqueued (in the commit's order).
        is_final: the run finished (completed, failed, terminated) for good.
    """

    commit: TurnCommit
    activities: list[NewActivity]
    is_final: bool


def build_turn(
    turn: TurnInput,
    *,
    new_events: Sequence[HistoryEvent],
    actions: Sequence[Action],
    status: OrchestrationStatus,
    custom_status: str | None,
    now: datetime,
    consumed_messages: Sequence[int] = (),
    consumed_activities: Sequence[int] = (),
    lease_activities: int = 0,
    keep_lease: bool = False,
    own_activity: bool = False,
    runs_here: Callable[[str, str | None], bool] | None = None,
    propagation: PropagationInput | None = None,
) -> TurnOutput:
    """Build the commit of one turn.

    Args:
        turn: the instance the turn is for.
        new_events: the turn's input events (OrchestratorStarted first), already applied.
        actions: the actions the workflow asked for in this turn.
        status: the instance's status after the turn (if no CompleteOrchestration).
        custom_status: JSON text of the custom status.
        now: the turn's time.
        consumed_messages: inbox rows applied.
        consumed_activities: activity rows whose results are in ``new_events``.
        lease_activities: how many of the new activities the committing worker runs itself
            (the first ones it can run).
        keep_lease: keep the instance lease after the commit.
        own_activity: the first activity leased is the instance's own task (kept in its
            row; see :data:`treadle.store.base.OWN_TASK_RULES`), if the turn keeps the lease
            (and it propagates no history).
        runs_here: which activities the committing worker can run, by name and app (of its
            app, registered there); None: all of them. Only those are leased to it.
        propagation: the run's history, if :func:`needs_past` says the turn needs it.
    """
    events: list[HistoryEvent] = list(new_events)
    activities: list[NewActivity] = []
    messages: list[NewMessage] = []
    instances: list[NewInstance] = []
    completion: CompleteOrchestration | None = None
    iid, exec_id = turn.instance_id, turn.execution_id
    leased_n = 0
    for action in actions:
        if isinstance(action, CompleteOrchestration):
            completion = action
            continue
        event = action_to_event(action, now)
        if event is not None:
            events.append(event)
        match action:
            case ScheduleTask():
                propagated = (
                    _propagated(propagation, action.propagation_scope, turn, events)
                    if action.propagation_scope
                    else None
                )
                app_id = turn.app_id if action.app_id is None else action.app_id
                heartbeat_s = (
                    None
                    if action.heartbeat_timeout is None
                    else action.heartbeat_timeout.total_seconds()
                )
                timeout_s = None if action.timeout is None else action.timeout.total_seconds()
                leased = (
                    leased_n < lease_activities
                    and (runs_here is None or runs_here(action.name, app_id))
                    and heartbeat_s is None  # (claimed, with a lease of its own length)
                    and timeout_s is None  # (claimed: the claim starts its timeout)
                )
                # (the first activity leased, if the turn keeps the lease: see own_activity)
                own = leased and own_activity and keep_lease and leased_n == 0
                own = own and propagated is None
                activities.append(
                    NewActivity(
                        instance_id=iid,
                        execution_id=exec_id,
                        task_id=action.id,
                        name=action.name,
                        input=action.input,
                        task_execution_id=action.task_execution_id or f"{exec_id}:{action.id}",
                        leased=leased,
                        own=own,
                        propagated=propagated,
                        app_id=app_id,
                        heartbeat_s=heartbeat_s,
                        timeout_s=timeout_s,
                    )
                )
                if leased:
                    leased_n += 1
            case CreateTimer():
                fired = TimerFired(
                    timestamp=action.fire_at, timer_id=action.id, fire_at=action.fire_at
                )
                messages.append(
                    NewMessage(iid, fired, execution_id=exec_id, visible_at=action.fire_at)
                )
            case CreateSubOrchestration():
                parent = ParentInfo(iid, exec_id, action.id, turn.name, turn.app_id or None)
                instances.append(
                    NewInstance(
                        instance_id=action.instance_id,
                        name=action.name,
                        input=action.input,
                        execution_id=new_execution_id(),
                        parent=parent,
                        propagated=_propagated(propagation, action.propagation_scope, turn, events),
                        app_id=turn.app_id if action.app_id is None else action.app_id,
                        timeout_at=None if action.timeout is None else now + action.timeout,
                    )
                )
            case SendEvent():
                raised = EventRaised(timestamp=now, name=action.name, input=action.input)
                messages.append(NewMessage(action.instance_id, raised))
            case _:
                raise AssertionError(f"unhandled action {type(action).__name__}")
    if completion is None:
        for event in new_events:  # (the run's timeout, in the turn that starts it)
            if isinstance(event, ExecutionStarted):
                messages.extend(_run_timeouts([event], iid, exec_id))
        commit = TurnCommit(
            instance_id=iid,
            expected_version=turn.version,
            new_events=events,
            history_start=turn.history_len,
            status=status,
            execution_id=exec_id,
            custom_status=custom_status,
            consumed_messages=consumed_messages,
            consumed_activities=consumed_activities,
            new_activities=activities,
            new_messages=messages,
            new_instances=instances,
            keep_lease=keep_lease,
        )
        return TurnOutput(commit, activities, is_final=False)
    return _finish(
        turn,
        completion,
        events=events,
        messages=messages,
        instances=instances,
        custom_status=custom_status,
        now=now,
        consumed_messages=consumed_messages,
        consumed_activities=consumed_activities,
        propagation=propagation,
    )


def _finish(
    turn: TurnInput,
    completion: CompleteOrchestration,
    *,
    events: list[HistoryEvent],
    messages: list[NewMessage],
    instances: list[NewInstance],
    custom_status: str | None,
    now: datetime,
    consumed_messages: Sequence[int],
    consumed_activities: Sequence[int],
    propagation: PropagationInput | None,
) -> TurnOutput:
    iid = turn.instance_id
    if completion.status is OrchestrationStatus.CONTINUED_AS_NEW:
        new_exec = new_execution_id()
        handed_on = None
        if propagation is not None:
            handed_on = carried_over(
                propagation.received,
                own_events=[*propagation.past, *events],
                app_id=propagation.app_id,
                instance_id=iid,
            )
        start = ExecutionStarted(
            timestamp=now,
            name=turn.name,
            instance_id=iid,
            execution_id=new_exec,
            input=completion.result,
            parent=turn.parent,
            propagated=handed_on,
            app_id=turn.app_id or None,
        )
        messages.append(NewMessage(iid, start, execution_id=new_exec))
        for carried in completion.carryover_events:
            messages.append(NewMessage(iid, carried, execution_id=new_exec))
        commit = TurnCommit(
            instance_id=iid,
            expected_version=turn.version,
            new_events=[],
            history_start=0,
            reset_history=True,
            status=OrchestrationStatus.RUNNING,
            execution_id=new_exec,
            input=completion.result,
            custom_status=custom_status,
            consumed_messages=consumed_messages,
            consumed_activities=consumed_activities,
            new_messages=messages,
            new_instances=instances,
            cancel_activities=True,
            keep_lease=True,
        )
        return TurnOutput(commit, [], is_final=False)
    events.append(
        ExecutionCompleted(
            timestamp=now,
            event_id=completion.id,
            status=completion.status,
            result=completion.result,
            failure=completion.failure,
        )
    )
    if turn.parent is not None:
        messages.append(result_for_parent(turn.parent, completion, now))
    if _terminates_children(completion, events):
        # (with the children this very turn creates: an SDK worker's turn may create one
        # and end the run together, and its created_children were read before the turn)
        created = [*turn.created_children, *(c.instance_id for c in instances)]
        for child_id in dict.fromkeys(created):
            terminate = ExecutionTerminated(timestamp=now, input=None, recurse=True)
            messages.append(NewMessage(child_id, terminate))
    commit = TurnCommit(
        instance_id=iid,
        expected_version=turn.version,
        new_events=events,
        history_start=turn.history_len,
        status=completion.status,
        execution_id=turn.execution_id,
        output=completion.result,
        failure=completion.failure,
        custom_status=custom_status,
        consumed_messages=consumed_messages,
        consumed_activities=consumed_activities,
        new_messages=messages,
        new_instances=instances,
        cancel_activities=True,
    )
    return TurnOutput(commit, [], is_final=True)


def _terminates_children(completion: CompleteOrchestration, events: Sequence[HistoryEvent]) -> bool:
    """Whether the run ends its children: a termination that asked to (a termination from
    the workflow's own code does), or the run's timeout."""
    terminate = next((e for e in events if isinstance(e, ExecutionTerminated)), None)
    if completion.status is not OrchestrationStatus.TERMINATED:
        return terminate is not None and terminate.timed_out
    return terminate is None or terminate.recurse


def _run_timeouts(
    new_events: Sequence[HistoryEvent], instance_id: str, execution_id: str
) -> list[NewMessage]:
    """The message that ends the run when its timeout passes, in the turn that starts it."""
    return [
        NewMessage(
            instance_id,
            ExecutionTerminated(timestamp=e.timeout_at, recurse=True, timed_out=True),
            execution_id=execution_id,
            visible_at=e.timeout_at,
        )
        for e in new_events
        if isinstance(e, ExecutionStarted)
        and e.timeout_at is not None
        and e.execution_id == execution_id
    ]


def result_for_parent(
    parent: ParentInfo, completion: CompleteOrchestration, now: datetime
) -> NewMessage:
    """The message that tells a parent workflow how its child ended."""
    event: HistoryEvent
    if completion.status is OrchestrationStatus.COMPLETED:
        event = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id, result=completion.result
        )
    else:
        failure = completion.failure or FailureDetails(
            message=f"child workflow ended {completion.status.name}",
            error_type="WorkflowTerminated"
            if completion.status is OrchestrationStatus.TERMINATED
            else "WorkflowFailed",
        )
        event = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id, failure=failure
        )
    return NewMessage(parent.instance_id, event, execution_id=parent.execution_id)
