"""Workflows and activities that run in another process (SDK workers), and their answers.

``treadle serve`` implements :class:`RemoteWorkers` over the durabletask gRPC work-item
stream: the runtime hands it the turns of workflows and the activities it has no local
function for, and the server reports each outcome back with
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_turn` and
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_activity`. Commits go through the
same code path as local workflows.

:class:`RemoteExecutor` keeps the turns out to remote workers until they answer.

Threads:
- The dispatcher, in a round under the engine lock: sends turns
  (:meth:`RemoteExecutor.send`) and takes the answers and abandoned turns
  (:meth:`RemoteExecutor.take_results`, :meth:`RemoteExecutor.take_abandoned`). Only it
  changes the turns out, and reads them (for renewals and claims) outside a round too.
- Any thread: :meth:`RemoteExecutor.has_answers` (whether the queues are empty, a hint).
- The server's threads: :meth:`RemoteExecutor.complete` and :meth:`RemoteExecutor.abandon`
  put what they bring on a queue and wake the dispatcher; ``complete`` reads the turns out
  without the lock, as a hint (the dispatcher drops an answer for a turn no longer out).

State: the turns out by instance id, and the queues of answers and of abandoned turns.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from treadle.clock import Clock, utcnow
from treadle.core.actions import Action
from treadle.core.history import (
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    Propagation,
    WorkflowVersion,
)
from treadle.core.versioning import recorded_patches, recorded_version_name, settle_turn
from treadle.runtime.turns import (
    PropagationInput,
    TurnInput,
    TurnOutput,
    build_turn,
    children_created,
    is_recorded_stall,
    needs_past,
    stall_commit,
)
from treadle.store.base import ActivityWorkItem, InboxMessage, InstanceRecord

__all__ = ["RemoteAnswer", "RemoteExecutor", "RemoteTurn", "RemoteWorkers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteTurn:
    """A workflow turn to run in a remote worker.

    Attributes:
        instance_id: the instance.
        execution_id: its current run.
        name: the workflow name.
        past_events: the run's stored history.
        new_events: this turn's events (OrchestratorStarted first).
    """

    instance_id: str
    execution_id: str
    name: str
    past_events: Sequence[HistoryEvent]
    new_events: Sequence[HistoryEvent]


class RemoteWorkers(Protocol):
    """Where the runtime sends work it cannot run in-process."""

    def submit_orchestration(self, turn: RemoteTurn) -> None:
        """Queue a workflow turn for a remote worker (returns at once)."""
        ...

    def submit_activity(self, item: ActivityWorkItem) -> None:
        """Queue an activity for a remote worker (returns at once)."""
        ...

    def has_workers(self) -> bool:
        """Whether a remote worker is connected to take work now."""
        ...

    def withdraw_orchestration(self, instance_id: str) -> bool:
        """Take back the instance's queued turn if no worker has received it yet (it is then
        never sent); False if a worker has it, or there is none."""
        ...


@dataclass(slots=True)
class _RemotePending:
    """A turn handed to a remote worker, waiting for its actions."""

    turn: TurnInput
    new_events: list[HistoryEvent]
    consumed: list[int]
    status: OrchestrationStatus
    custom_status: str | None
    """The instance's custom status before the turn (kept if the turn stalls)."""
    past: Sequence[HistoryEvent]
    """The run's stored history."""
    received: Propagation | None = None
    """The history propagated to the run, if any."""


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    """A remote worker's answer to a turn, built into what to commit.

    Attributes:
        instance_id: the instance.
        output: the turn to commit; None when the turn stalled the instance as its history
            already records (nothing to commit: the instance is only let go).
        stalled: the turn stalls the instance (see :mod:`treadle.core.versioning`).
    """

    instance_id: str
    output: TurnOutput | None
    stalled: bool = False


class RemoteExecutor:
    """The turns out to remote workers, and their answers (see the module).

    Args:
        workers: where to send them.
        wake: wakes the dispatcher (called from the server's threads).
        clock: the time of each turn, and of the delays before a turn given up is sent again.
        app_id: the app the workflows run in (it tags the history they propagate).
    """

    def __init__(
        self,
        workers: RemoteWorkers,
        wake: Callable[[], None],
        clock: Clock,
        *,
        app_id: str = "treadle",
    ) -> None:
        self._clock = clock
        self._app_id = app_id
        self.workers = workers
        self._wake = wake
        self._pending: dict[str, _RemotePending] = {}
        self._results: queue.SimpleQueue[
            tuple[str, list[Action], str | None, WorkflowVersion | None]
        ] = queue.SimpleQueue()
        # (instance id, monotonic time before which it is not claimed again)
        self._abandoned: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()

    def has_answers(self) -> bool:
        """Whether answers or abandoned turns wait for the dispatcher (any thread)."""
        return not (self._results.empty() and self._abandoned.empty())

    def pending_ids(self) -> list[str]:
        """The instances whose turn is out (dispatcher)."""
        return list(self._pending)

    def send(
        self,
        record: InstanceRecord,
        turn: TurnInput,
        events: list[HistoryEvent],
        consumed: list[int],
        past: Sequence[HistoryEvent],
    ) -> None:
        """Hand the instance's turn to a remote worker (dispatcher, engine lock held).

        Args:
            record: the claimed instance.
            turn: what the turn starts from (its parent and children are filled in here).
            events: the turn's new events, from the messages it consumes.
            consumed: the ids of those messages.
            past: the run's stored history.
        """
        turn.created_children = children_created(past)
        received: Propagation | None = None
        for event in (*past, *events):
            if isinstance(event, ExecutionStarted):
                turn.parent = event.parent
                received = event.propagated
        new_events: list[HistoryEvent] = [
            OrchestratorStarted(timestamp=utcnow(self._clock)),
            *events,
        ]
        status = record.status
        if status is OrchestrationStatus.PENDING:
            status = OrchestrationStatus.RUNNING
        elif status is OrchestrationStatus.STALLED:  # as its history left it
            status = OrchestrationStatus.RUNNING
            for event in past:
                if isinstance(event, ExecutionSuspended):
                    status = OrchestrationStatus.SUSPENDED
                elif isinstance(event, ExecutionResumed):
                    status = OrchestrationStatus.RUNNING
        for event in new_events:
            if isinstance(event, ExecutionSuspended):
                status = OrchestrationStatus.SUSPENDED
            elif isinstance(event, ExecutionResumed):
                status = OrchestrationStatus.RUNNING
        self._pending[record.instance_id] = _RemotePending(
            turn, new_events, consumed, status, record.custom_status, past, received
        )
        self.workers.submit_orchestration(
            RemoteTurn(record.instance_id, record.execution_id, record.name, past, new_events)
        )

    def complete(
        self,
        instance_id: str,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None = None,
    ) -> bool:
        """A remote worker's actions for the instance's turn, with the version it ran and the
        patches it found true (any thread); False if no turn of that instance is out (a late
        or duplicate answer)."""
        if instance_id not in self._pending:
            return False
        self._results.put((instance_id, actions, custom_status, version))
        self._wake()
        return True

    def abandon(self, instance_id: str, retry_after_s: float) -> None:
        """Give up the instance's turn (any thread): it is claimed and sent again, no sooner
        than ``retry_after_s`` seconds from now."""
        self._abandoned.put((instance_id, self._clock.monotonic() + retry_after_s))
        self._wake()

    def withdraw_unsent(self, instance_id: str) -> bool:
        """Give up the instance's turn if it still waits for a worker to receive it (any
        thread): the instance is claimed again at once, with the messages that came since.
        A suspend or resume then need not wait for a worker that has gone (see
        :meth:`controls_turn`). Whether the turn was given up."""
        if instance_id not in self._pending:  # (a hint, read without the lock)
            return False
        if not self.workers.withdraw_orchestration(instance_id):
            return False
        self.abandon(instance_id, 0.0)
        return True

    def controls_turn(
        self, record: InstanceRecord, turn: TurnInput, messages: Sequence[InboxMessage]
    ) -> TurnOutput | None:
        """The turn that records the suspends and resumes among ``messages`` without the
        workflow's code, while no remote worker is connected (dispatcher); None if there are
        none, a worker is connected, or the instance is not running or suspended.

        A suspend or resume takes no decision of the workflow's: the SDK replays the recorded
        events the next time a worker runs the instance. The other messages stay in the
        inbox for that worker; one raised before the suspend then reaches the workflow once it
        is resumed, as one raised while it is suspended does.
        """
        if (
            record.history_len == 0
            or record.status not in (OrchestrationStatus.RUNNING, OrchestrationStatus.SUSPENDED)
            or self.workers.has_workers()
        ):
            return None
        controls = [
            m
            for m in messages
            if isinstance(m.event, (ExecutionSuspended, ExecutionResumed))
            and m.execution_id in (None, record.execution_id)
        ]
        if not controls:
            return None
        status = record.status
        for message in controls:
            suspended = isinstance(message.event, ExecutionSuspended)
            status = OrchestrationStatus.SUSPENDED if suspended else OrchestrationStatus.RUNNING
        now = utcnow(self._clock)
        return build_turn(
            turn,
            new_events=[OrchestratorStarted(timestamp=now), *(m.event for m in controls)],
            actions=[],
            status=status,
            custom_status=record.custom_status,
            now=now,
            consumed_messages=[m.id for m in controls],
        )

    def take_abandoned(self) -> list[tuple[str, float]]:
        """The turns given up since last asked that were still out, each with the monotonic
        time before which its instance is not claimed again (dispatcher)."""
        taken: list[tuple[str, float]] = []
        while True:
            try:
                iid, not_before = self._abandoned.get_nowait()
            except queue.Empty:
                return taken
            if self._pending.pop(iid, None) is not None:
                taken.append((iid, not_before))

    def take_results(self) -> list[RemoteAnswer]:
        """The answered turns since last asked, each checked against the run's history as
        daprd checks it (:func:`~treadle.core.versioning.settle_turn`) and built into its
        commit (dispatcher)."""
        taken: list[RemoteAnswer] = []
        while True:
            try:
                iid, actions, custom_status, version = self._results.get_nowait()
            except queue.Empty:
                return taken
            remote = self._pending.pop(iid, None)
            if remote is None:
                continue
            taken.append(self._answer(iid, remote, actions, custom_status, version))

    def _answer(
        self,
        iid: str,
        remote: _RemotePending,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None,
    ) -> RemoteAnswer:
        settled = settle_turn(
            remote.new_events,
            actions,
            recorded=recorded_patches(remote.past),
            recorded_name=recorded_version_name(remote.past),
            reported=version,
        )
        now = utcnow(self._clock)
        stall = settled.stall
        if stall is not None:
            if is_recorded_stall(remote.past, stall):
                return RemoteAnswer(iid, None, stalled=True)
            logger.warning("workflow instance %s is stalled: %s", iid, stall.description)
            commit = stall_commit(remote.turn, stall, now=now, custom_status=remote.custom_status)
            return RemoteAnswer(iid, TurnOutput(commit, [], is_final=False), stalled=True)
        output = build_turn(
            remote.turn,
            new_events=settled.new_events,
            actions=settled.actions,
            status=remote.status,
            custom_status=custom_status,
            now=now,
            consumed_messages=remote.consumed,
            propagation=PropagationInput(remote.past, remote.received, self._app_id)
            if needs_past(settled.actions, remote.received)
            else None,
        )
        return RemoteAnswer(iid, output)
