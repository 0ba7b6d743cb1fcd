"""The Store protocol: the one small interface every backend implements.

A store keeps, per workflow instance: an instance row (status, payloads, lease), an
append-only history, an inbox of messages (events waiting to be processed, including timers,
which are messages visible from their fire time), and a queue of activity tasks.

Runtimes claim work under a lease (an owner string and an expiry on the store's clock) and
commit a whole turn in one transaction, fenced by the instance's version: a commit from a
worker that lost its lease, or that worked on a stale copy, fails with
:class:`~treadle.errors.LeaseLostError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    ParentInfo,
    Propagation,
    TraceContext,
)
from treadle.core.records import record_class
from treadle.errors import FailureDetails
from treadle.store.apps import WaitingWork, WorkerInfo, WorkerRecord
from treadle.store.ids import new_execution_id as new_execution_id  # (re-exported)


@record_class
class InstanceRecord:
    """The stored state of one workflow instance.

    Attributes:
        instance_id: the instance's id.
        name: the workflow's registered name.
        status: the runtime status.
        execution_id: the id of the current run (changes with continue-as-new).
        input: JSON text of the current run's input.
        output: JSON text of the result (or terminate output).
        custom_status: JSON text of the custom status.
        failure: why it failed, if it failed.
        created_at: when the instance was created (UTC).
        updated_at: when it last changed (UTC).
        parent_instance_id: the parent's id, for a child workflow.
        history_len: number of history events of the current run.
        version: bumped by every committed turn (the commit fence).
        app_id: the app whose workers run it ("" for none).
        waiting: why it waits for a worker, while no running worker can take its work
            (a workflow or an activity nobody registered, an app with no worker), else None.
    """

    instance_id: str
    name: str
    status: OrchestrationStatus
    execution_id: str
    input: str | None
    output: str | None
    custom_status: str | None
    failure: FailureDetails | None
    created_at: datetime
    updated_at: datetime
    parent_instance_id: str | None = None
    history_len: int = 0
    version: int = 0
    app_id: str = ""
    waiting: str | None = None


@record_class
class InboxMessage:
    """A message waiting in an instance's inbox.

    Attributes:
        id: the message's row id (ordering and deletion).
        instance_id: the target instance.
        event: the history event it carries.
        execution_id: the run it is meant for, or None for whichever run is current.
    """

    id: int
    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None


@record_class
class OrchestrationWorkItem:
    """A claimed instance with the messages to apply in the next turn.

    Attributes:
        instance: the claimed instance.
        messages: the messages to apply.
        taken_from: the owner whose lapsed lease this claim took over, if any (a worker
            that stopped without releasing it).
    """

    instance: InstanceRecord
    messages: list[InboxMessage]
    taken_from: str | None = None


@record_class
class NewActivity:
    """An activity task to enqueue.

    Attributes:
        instance_id: the calling instance.
        execution_id: the calling run.
        task_id: the call's sequence id.
        name: the activity's name.
        input: JSON text of its input.
        task_execution_id: stable across retries.
        leased: enqueue already leased to the committing owner (it will run it itself).
        own: keep it in the instance's row instead of the task queue, held under the
            instance's lease (see :data:`OWN_TASK_RULES`). Only with ``leased`` and
            ``keep_lease``, and at most one per instance at a time; never with
            ``propagated``.
        propagated: the history the calling workflow hands the activity
            (``call_activity(..., propagation=...)``), if any.
            ``keep_lease``, and at most one per instance at a time.
        app_id: the app whose workers run it ("" for none); a task is claimed only by
            workers of its app (see :mod:`treadle.store.apps`).
    """

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    task_execution_id: str
    leased: bool = False
    own: bool = False
    propagated: Propagation | None = None
    app_id: str = ""
    heartbeat_s: float | None = None
    """Its heartbeat timeout in seconds, if any (see :class:`ActivityWorkItem`); such a task
    is never leased at commit nor kept as an own task."""
    timeout_s: float | None = None
    """Its start-to-close timeout in seconds, if any: the claim that first takes it sets its
    deadline (see :mod:`treadle.store.deadlines`); such a task is never leased at commit nor
    kept as an own task."""


@record_class
class ActivityWorkItem:
    """A claimed activity task.

    Attributes:
        id: the task's row id.
        instance_id: the calling instance.
        execution_id: the calling run.
        task_id: the call's sequence id.
        name: the activity's name.
        input: JSON text of its input.
        task_execution_id: stable across retries.
        propagated: the history the calling workflow handed it, if any.
        heartbeat_s: its heartbeat timeout, if it has one: its lease lasts at most this long
            and is renewed by its heartbeats (:meth:`Store.heartbeat_activity`).
        heartbeat_details: JSON text of the details of its last heartbeat (of an attempt
            that did not finish), if any.
        deliveries: how many times the task has been handed to a worker, this time included
            (claims, and a lease taken with its creation); more than one means earlier
            attempts never reported back (their worker crashed or was killed). 0 where the
            store does not say (a task leased with the turn that created it).
    """

    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    task_execution_id: str
    propagated: Propagation | None = None
    heartbeat_s: float | None = None
    heartbeat_details: str | None = None
    deliveries: int = 0


@record_class
class ActivityResult:
    """The outcome of an activity, to deliver to its instance's inbox.

    Attributes:
        task: the work item it answers.
        event: a TaskCompleted or TaskFailed event.
    """

    task: ActivityWorkItem
    event: HistoryEvent


@record_class
class NewMessage:
    """A message to put in an instance's inbox.

    Attributes:
        instance_id: the target instance.
        event: the event it carries.
        execution_id: the run it is meant for (None: the current run).
        visible_at: when it becomes visible (timers), or None for now.
    """

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None
    visible_at: datetime | None = None


@record_class
class NewInstance:
    """An instance to create (by a client, or as a child workflow).

    Attributes:
        instance_id: its id.
        name: the workflow's name.
        input: JSON text of the input.
        execution_id: the id of its first run.
        parent: the parent, for a child workflow.
        scheduled_start: start no earlier than this, if set.
        history: a history to start from (a rerun): the instance is created RUNNING with it,
            with no ExecutionStarted message.
        activities: activity tasks to enqueue with such a history.
        messages: messages (timers) to queue with such a history.
        propagated: the history its parent hands it (``call_child_workflow(...,
            propagation=...)``), carried by its ExecutionStarted.
        app_id: the app whose workers run it ("" for none).
        timeout_at: when its first run fails with a TimeoutError if not finished, if ever.
        trace: the trace context its ExecutionStarted records, if traced.
    """

    instance_id: str
    name: str
    input: str | None
    execution_id: str
    parent: ParentInfo | None = None
    scheduled_start: datetime | None = None
    history: Sequence[HistoryEvent] = ()
    activities: Sequence[NewActivity] = ()
    messages: Sequence[NewMessage] = ()
    propagated: Propagation | None = None
    app_id: str = ""
    timeout_at: datetime | None = None
    trace: TraceContext | None = None

    def started_event(self, timestamp: datetime) -> ExecutionStarted:
        """The ExecutionStarted event that begins this instance's first run."""
        return ExecutionStarted(
            timestamp=timestamp,
            name=self.name,
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            input=self.input,
            parent=self.parent,
            scheduled_start=self.scheduled_start,
            propagated=self.propagated,
            app_id=self.app_id or None,
            timeout_at=self.timeout_at,
            trace=self.trace,
        )


@record_class
class TurnCommit:
    """Everything one workflow turn changes, committed atomically.

    Attributes:
        instance_id: the instance.
        expected_version: the version the turn was computed from (the fence).
        new_events: history events to append after ``history_start`` existing ones.
        history_start: the number of events of the run already stored.
        status: the instance's status after the turn.
        execution_id: the run the events belong to.
        reset_history: drop the stored history first (continue-as-new).
        input: the run's input (set when a new run starts).
        output: the result, when the run finished.
        failure: why it failed, when it failed.
        custom_status: the custom status after the turn.
        consumed_messages: inbox rows applied in this turn.
        consumed_activities: activity task rows whose results are in ``new_events``.
        new_activities: activity tasks to enqueue.
        new_messages: messages for inboxes (timers, child starts and results, events).
        new_instances: child instances to create.
        keep_lease: keep the lease after the commit (the owner has work in flight).
        cancel_activities: drop the run's queued activity tasks (it finished).
        create: the instance does not exist yet: it is created by this, its first turn,
            leased to the owner, as if it had been created with ``create`` and claimed
            (``expected_version`` 0, no ExecutionStarted message: the event is in
            ``new_events``). Refused with :data:`ID_TAKEN` if any instance has the id.
            Such a turn neither creates instances nor resets its history (see
            :func:`creatable`), and is committed alone unless the store groups starts
            (:class:`~treadle.store.capabilities.StartGrouping`).
    """

    instance_id: str
    expected_version: int
    new_events: Sequence[HistoryEvent]
    history_start: int
    status: OrchestrationStatus
    execution_id: str
    reset_history: bool = False
    input: str | None = None
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    consumed_messages: Sequence[int] = ()
    consumed_activities: Sequence[int] = ()
    new_activities: Sequence[NewActivity] = ()
    new_messages: Sequence[NewMessage] = ()
    new_instances: Sequence[NewInstance] = ()
    keep_lease: bool = False
    cancel_activities: bool = False
    create: NewInstance | None = None


TERMINATION_PREFIX = '{"kind":"ExecutionTerminated"'
"""How the stored text of an ExecutionTerminated message begins (``event_to_json``): claims
look for it (see :meth:`Store.claim_orchestrations`)."""

ID_TAKEN = "an instance with this id already exists"
"""The refusal of a creating turn (:attr:`TurnCommit.create`) whose instance id is taken."""


def creatable(turn: TurnCommit) -> bool:
    """Whether ``turn``, a new instance's first, may create its instance itself
    (:attr:`TurnCommit.create`): it creates no other instance and keeps its history."""
    return (
        not turn.new_instances
        and not turn.reset_history
        and turn.expected_version == 0
        and all(a.instance_id == turn.instance_id for a in turn.new_activities)
    )


def check_creating(turns: Sequence[TurnCommit], *, grouped: bool = False) -> None:
    """Refuse a group with a creating turn (:attr:`TurnCommit.create`) that is not
    :func:`creatable`, or that is not alone unless ``grouped`` (a store that commits creating
    turns among others: :class:`~treadle.store.capabilities.StartGrouping`).

    Raises:
        ValueError: it is.
    """
    if len(turns) == 1 and turns[0].create is None:
        return  # (one turn of an existing instance, as most commits: nothing to check)
    creating = [t for t in turns if t.create is not None]
    if creating and not (all(map(creatable, creating)) and (grouped or len(turns) == 1)):
        raise ValueError(
            "a turn that creates its instance is committed alone, creates no other instance "
            "and keeps its history (see treadle.store.base.creatable)"
        )


@record_class
class CommitOutcome:
    """What happened to one turn of a group commit.

    Attributes:
        instance_id: the instance.
        ok: committed.
        version: the instance's version after the commit (if ok).
        new_activity_ids: ids of the tasks enqueued leased to the owner, in order (an own
            task's id is negative: see :func:`~treadle.store.own_tasks.next_own_task_id`).
        error: why it was refused, if not ok (see :mod:`treadle.store.fencing`).
    """

    instance_id: str
    ok: bool
    version: int = 0
    new_activity_ids: list[int] = field(default_factory=list)
    error: str | None = None


@record_class
class InstanceQuery:
    """Filters for listing instances.

    Attributes:
        statuses: only these statuses (any if empty).
        name: only this workflow name.
        created_from: created at or after.
        created_to: created before.
        limit: page size.
        cursor: where the previous page ended (from :class:`InstancePage`).
        id_prefix: only instances whose id starts with this.
    """

    statuses: tuple[OrchestrationStatus, ...] = ()
    name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 100
    cursor: str | None = None
    id_prefix: str | None = None


@record_class
class InstancePage:
    """One page of :meth:`Store.list_instances`.

    Attributes:
        instances: the records, newest first.
        next_cursor: pass it back for the next page; None on the last page.
    """

    instances: list[InstanceRecord]
    next_cursor: str | None = None


@runtime_checkable
class Store(Protocol):
    """Durable storage for instances, histories, inboxes and activity tasks."""

    url: str

    # ---- clients ------------------------------------------------------------------
    def create_instance(self, new: NewInstance) -> None:
        """Create an instance and queue its ExecutionStarted message.

        A finished instance with the same id is replaced.

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
        """
        ...

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""
        ...

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        """A page of instances matching ``query``, newest first."""
        ...

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history, oldest first (empty for an unknown id)."""
        ...

    def send_message(self, message: NewMessage) -> None:
        """Put a message in an existing instance's inbox.

        Raises:
            WorkflowNotFoundError: no instance has that id.
        """
        ...

    def signal_instance(
        self, message: NewMessage, *, shown_status: OrchestrationStatus | None = None
    ) -> bool:
        """Put a control message (terminate, suspend, resume) in an instance's inbox, as
        :meth:`send_message` does, and say whether a worker holds the instance's lease.

        With ``shown_status`` (SUSPENDED or RUNNING), an instance that nobody holds (no
        lease, or an expired one) and that is RUNNING or SUSPENDED shows that status at once,
        in the same transaction: no turn of it can be under way (a commit needs a live lease,
        and the version moves on, fencing off one computed before), and its next turn takes
        this message and commits that status itself (unless it finishes the instance).

        Returns:
            whether a worker holds the instance's live lease (its turn will take the message
            shortly; the status shown is the worker's to change).

        Raises:
            WorkflowNotFoundError: no instance has that id.
        """
        ...

    def purge_instance(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance (and its finished children); return how many.

        Raises:
            WorkflowStateError: the instance (or a child) has not finished.
        """
        ...

    def child_instance_ids(self, instance_id: str) -> list[str]:
        """Ids of instances whose parent is ``instance_id``."""
        ...

    # ---- workers ------------------------------------------------------------------
    def claim_orchestrations(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        exclude: Sequence[str] = (),
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Lease instances with visible inbox messages; return them with those messages.

        Only instances of ``app_id`` are claimed, and only of the workflows ``names`` (any
        workflow when None), the work the claiming worker can do; but an instance of its app
        with a termination waiting (:data:`TERMINATION_PREFIX`) is claimed whatever its
        workflow, so that one nobody runs can still be terminated.
        """
        ...

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        """Commit many turns in one transaction; a turn whose fence fails is refused alone.

        A turn is accepted only if ``owner`` holds the instance's unexpired lease and its
        version is ``expected_version``. Activities marked ``leased`` and kept instance leases
        get ``lease_s`` seconds. A child whose id is taken by an unfinished instance is not
        created; its parent receives a SubOrchestrationInstanceFailed message instead.
        """
        ...

    def claim_activities(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
        except_names: Sequence[str] = (),
    ) -> list[ActivityWorkItem]:
        """Lease visible activity tasks that nobody holds (or whose lease expired), of
        ``app_id`` and of the activities ``names`` (any activity when None) but
        ``except_names`` (those on a queue, claimed within its limits by ``claim_queued``)."""
        ...

    def complete_activities(self, owner: str, results: Sequence[ActivityResult]) -> None:
        """Deliver activity results to their inboxes and delete the tasks, atomically.

        A result whose task row is gone (already delivered, or the run finished) is dropped.
        """
        ...

    def renew_leases(
        self, owner: str, instance_ids: Sequence[str], activity_ids: Sequence[int], lease_s: float
    ) -> list[str]:
        """Extend leases; return the instance ids whose lease this owner no longer holds."""
        ...

    def release_leases(self, owner: str, instance_ids: Sequence[str] | None = None) -> None:
        """Give up this owner's leases (all of them when ``instance_ids`` is None)."""
        ...

    def renew_activity_leases(
        self, owner: str, activity_ids: Sequence[int], lease_s: float
    ) -> list[int]:
        """Extend this owner's leases of activity tasks (positive ids) by ``lease_s`` from now.

        Returns:
            the ids it no longer holds: taken over by another worker, or gone (their run
            ended: terminated, failed, timed out or completed). Those should stop.
        """
        ...

    def heartbeat_activity(
        self, owner: str, activity_id: int, details: str | None, lease_s: float
    ) -> bool:
        """Record a heartbeat of an activity this owner holds: keep ``details`` (JSON text)
        for an attempt that takes it over, and extend its lease by ``lease_s`` from now.

        Returns:
            False if the owner no longer holds it (its lease lapsed and another worker took
            it, or its run finished): the activity should stop, its result is dropped.
        """
        ...

    def lease_owners(self) -> list[str]:
        """Owners currently holding any lease."""
        ...

    def next_wakeup(self) -> datetime | None:
        """The earliest future visible time of a message or task, if any."""
        ...

    def change_token(self, work_only: bool = False) -> object:
        """An opaque value that changes whenever anything in the store may have changed.

        Args:
            work_only: a :class:`WorkToken` instead, whose parts need change only when a
                worker may find new work of that kind to claim (instances: new instances
                and messages, leases let go; activities: tasks nobody holds), not when an
                instance's status alone changed. Workers wait on this one, clients on the
                other.
        """
        ...

    def wait_for_work(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> object:
        """Block until the change token differs from ``since`` (or ``timeout_s`` passed).

        Args:
            work_only: wait on the token of new work (see :meth:`change_token`).

        Returns:
            the current change token, to pass as ``since`` next time.
        """
        ...

    # ---- apps and workers (see treadle.store.apps) -------------------------------------
    def advertise_worker(self, worker: WorkerInfo, *, stopped: bool = False) -> None:
        """Record what ``worker`` takes, heard from now (a heartbeat); ``stopped``: it shut
        down. Advertisements of workers stopped or silent for a day are forgotten."""
        ...

    def list_workers(self) -> list[WorkerRecord]:
        """Every advertisement kept (live, stopped or silent), by owner."""
        ...

    def waiting_work(self, visible_before: datetime) -> list[WaitingWork]:
        """The work nobody holds that became visible before ``visible_before``, grouped by
        kind, app, name, the caller's app and (instances) whether they started: unfinished
        instances with visible messages, and activity tasks."""
        ...

    def fail_waiting(
        self, work: WaitingWork, failure: FailureDetails, visible_before: datetime
    ) -> int:
        """Fail the calls of ``work``'s group (its kind, app, name and caller's app) that
        still wait, visible before ``visible_before``: each activity task is deleted and its
        caller gets a TaskFailed; each child instance that has not started is FAILED with
        ``failure`` and its parent gets a SubOrchestrationInstanceFailed. Top-level and
        started instances are left alone. Returns how many calls failed."""
        ...

    def note_waiting(self, notes: Sequence[tuple[WaitingWork, str]]) -> None:
        """Set the ``waiting`` note of the instances that wait in each group (the instances
        themselves for workflows, the calling ones for activities; up to
        :data:`~treadle.store.apps.NOTED_PER_GROUP` a group) to its text, and clear every other
        instance's note."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


OWN_TASK_RULES = """
An instance's own task: the one activity a worker runs for an instance it holds, kept in the
instance's row instead of the task queue. A step of a sequential chain then writes the
instance row and its history only, no task row to insert and delete.

- A turn's ``new_activities`` holds at most one ``own`` task, and the instance has no other
  own task then; its id in ``CommitOutcome.new_activity_ids`` is negative and unique in the
  process, and a result carries it in ``consumed_activities``.
- Whoever clears the own task records its result: a turn that consumes it (refused, like a
  consumed task row that is gone, if the instance's own task is no longer that task), or
  ``complete_activities`` (dropped if it is no longer that task).
- A turn that cancels activities, or ends its run, clears it.
- A turn that gives up the lease, or sets another own task, without consuming it (a worker
  that did not see its commit of the task succeed) queues it as an ordinary task row in the
  same commit, as a release of the lease does.
- The task becomes an ordinary task row (unleased, for any worker) when the instance's lease
  passes to another owner (a claim of an instance held by another owner or whose lease
  expired), when the lease is released, and when a claim of activities finds an instance
  whose lease expired while it had an own task.
"""
"""The contract of own tasks, shared by every store (see :class:`NewActivity`)."""


class WorkToken(NamedTuple):
    """A worker's change token (``change_token(work_only=True)``): one opaque part per kind
    of work, each changing when that kind may have appeared.

    Attributes:
        orchestrations: instances to claim (new instances and messages, leases let go).
        activities: activity tasks nobody holds.
    """

    orchestrations: object
    activities: object


def gives_orchestration_work(turn: TurnCommit) -> bool:
    """Whether a worker may find an instance to claim after this turn: a running instance
    let go, messages, new instances. Stores wake workers for these."""
    return (
        (not turn.keep_lease and not turn.status.is_terminal)
        or bool(turn.new_messages)
        or bool(turn.new_instances)
    )


def gives_activity_work(turn: TurnCommit) -> bool:
    """Whether this turn queues activities that nobody holds (for any worker to claim)."""
    for activity in turn.new_activities:  # noqa: SIM110 (no generator: this is every turn)
        if not activity.leased:
            return True
    return False
