"""Workflows and activities that run in another process (SDK workers), and their answers.

``treadle serve`` implements :class:`RemoteWorkers` over the durabletask gRPC work-item
stream: the runtime hands it the turns of workflows and the activities it has no local
function for, and the server reports each outcome back with
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_turn` and
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_activity`. Commits go through the
same code path as local workflows.

:class:`RemoteExecutor` keeps the turns out to remote workers until they answer, and holds an
instance between its turns while its activities are out (the runtime keeps its lease), with its
history (:class:`~treadle.runtime.remote_history.RemoteHistory`): an activity result then goes
into the instance's next turn, sent at once, as a local workflow's result is folded into its
next step; the turn's commit consumes the activity. Nothing of a turn is acted on before it is
committed: its activities are handed to the workers once it is.

Threads:
- Whoever holds the engine lock (the dispatcher in a round; a thread committing a result
  inline or a start): sends turns (:meth:`RemoteExecutor.send`,
  :meth:`RemoteExecutor.send_held`), takes the answers and abandoned turns
  (:meth:`RemoteExecutor.take_results`, :meth:`RemoteExecutor.take_abandoned`), and holds and
  releases instances. The dispatcher reads the turns out and the instances held (for renewals
  and claims) outside a round too.
- Any thread: :meth:`RemoteExecutor.has_answers` (whether the queues are empty, a hint).
- The server's threads: :meth:`RemoteExecutor.complete` and :meth:`RemoteExecutor.abandon`
  put what they bring on a queue and wake the dispatcher; ``complete`` reads the turns out
  without the lock, as a hint (the dispatcher drops an answer for a turn no longer out).

State: the turns out and the instances held, by instance id (an instance whose turn is out is
held too: results that come meanwhile wait there for its next turn), and the queues of answers
and of abandoned turns.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import field

from treadle.clock import Clock, utcnow
from treadle.core.actions import Action, ScheduleTask
from treadle.core.history import (
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    WorkflowVersion,
)
from treadle.core.records import record_class
from treadle.core.versioning import settle_turn
from treadle.runtime.codeless_turns import is_recorded_stall, stall_commit
from treadle.runtime.remote_history import RemoteHistory
from treadle.runtime.remote_workers import Completion, RemoteTurn, RemoteWorkers
from treadle.runtime.turns import PropagationInput, TurnInput, TurnOutput, build_turn, needs_past
from treadle.store.base import ActivityWorkItem, InboxMessage, InstanceRecord

__all__ = ["Completion", "RemoteAnswer", "RemoteExecutor", "RemoteTurn", "RemoteWorkers"]

logger = logging.getLogger(__name__)


@record_class(frozen=False)
class _RemotePending:
    """A turn handed to a remote worker, waiting for its actions."""

    turn: TurnInput
    new_events: list[HistoryEvent]
    consumed: list[int]
    status: OrchestrationStatus
    custom_status: str | None
    """The instance's custom status before the turn (kept if the turn stalls)."""
    history: RemoteHistory
    """The run's stored history."""
    completions: list[Completion] = field(default_factory=list)
    """Activity results folded into the turn (their tasks are consumed by its commit)."""


@record_class(frozen=False)
class _Held:
    """An instance whose lease this runtime keeps between its remote turns (its activities
    are out), at the version its last turn committed."""

    name: str
    version: int
    history: RemoteHistory
    status: OrchestrationStatus
    custom_status: str | None
    waiting: list[Completion] = field(default_factory=list)
    """Activity results that came while its turn was out, for its next turn."""


@record_class
class RemoteAnswer:
    """A remote worker's answer to a turn, built into what to commit.

    Attributes:
        instance_id: the instance.
        output: the turn to commit; None when the turn stalled the instance as its history
            already records (nothing to commit: the instance is only let go).
        stalled: the turn stalls the instance (see :mod:`treadle.core.versioning`).
        completions: the activity results folded into the turn.
        history: the run's history before the turn.
    """

    instance_id: str
    output: TurnOutput | None
    stalled: bool = False
    completions: list[Completion] = field(default_factory=list)
    history: RemoteHistory | None = None


RunsHere = Callable[[str, str | None], bool]
"""Whether this runtime runs an activity, by name and app (None: the caller's): only those
are leased to it."""

Plan = Callable[[str, int], tuple[int, bool, bool]]
"""How many of a turn's ``n`` activities this runtime leases (``plan(instance_id, n)``), whether
the one leased may be the instance's own task, and whether the instance still has activities
running: see :meth:`RemoteExecutor.take_results`."""


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
        stamp: Callable[[str, list[HistoryEvent]], None] | None = None,
    ) -> None:
        self._clock = clock
        self._app_id = app_id
        # (traces on: puts a new run's span id into its ExecutionStarted before the turn goes
        # out, so that the SDK's first request carries it, as history will)
        self._stamp = stamp
        self.workers = workers
        self._wake = wake
        self._pending: dict[str, _RemotePending] = {}
        self._held: dict[str, _Held] = {}
        self._ready: dict[str, None] = {}  # held, results waiting, no turn out (in order)
        self._results: queue.SimpleQueue[
            tuple[str, list[Action], str | None, WorkflowVersion | None]
        ] = queue.SimpleQueue()
        # (instance id, monotonic time before which it is not claimed again)
        self._abandoned: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._passed_over: set[str] = set()  # left out of a claim while their turn was out

    def has_answers(self) -> bool:
        """Whether answers or abandoned turns wait for the dispatcher (any thread)."""
        return not (self._results.empty() and self._abandoned.empty())

    def pending_ids(self) -> list[str]:
        """The instances whose turn is out (dispatcher)."""
        return list(self._pending)

    def pass_over(self) -> list[str]:
        """The instances whose turn is out, for a claim to leave out (dispatcher, without the
        engine lock). A message that came for one waits in its inbox: if the instance stays
        held after its turn, the turn's commit asks for a claim (:meth:`committed`), else the
        message would wait for a periodic one."""
        out = list(self._pending)
        self._passed_over.update(out)
        return out

    def held_ids(self) -> list[str]:
        """The instances held here between remote turns, whose lease is kept (dispatcher)."""
        return [iid for iid in self._held if iid not in self._pending]

    # ---- instances held between turns ----------------------------------------------------
    def history_for(self, record: InstanceRecord) -> RemoteHistory | None:
        """The kept history of a claimed instance, if held here at the record's version."""
        held = self._held.get(record.instance_id)
        if (
            held is None
            or held.version != record.version
            or held.history.execution_id != record.execution_id
        ):
            return None
        return held.history

    def is_ahead(self, record: InstanceRecord) -> bool:
        """Whether this executor is past a claimed record: a turn of its run is out, or one
        was committed after the claim read the record (the claim then ran outside the engine
        lock while a server thread committed)."""
        iid = record.instance_id
        if iid in self._pending:
            return True
        held = self._held.get(iid)
        return (
            held is not None
            and held.history.execution_id == record.execution_id
            and held.version > record.version
        )

    def holds(self, instance_id: str, execution_id: str) -> bool:
        """Whether an activity result of that run goes into the instance's next remote turn
        (the instance is held here) rather than through its inbox."""
        held = self._held.get(instance_id)
        return held is not None and held.history.execution_id == execution_id

    def add_result(self, item: ActivityWorkItem, event: HistoryEvent) -> bool:
        """Keep an activity result of a held instance for its next turn (see :meth:`holds`);
        whether that turn is due now (no turn of the instance is out)."""
        iid = item.instance_id
        self._held[iid].waiting.append((item, event))
        if iid in self._pending:
            return False
        self._ready[iid] = None
        return True

    def ready(self) -> list[str]:
        """The held instances with results waiting and no turn out: their next turns are due."""
        return list(self._ready)

    def send_held(self, instance_id: str, app_id: str) -> None:
        """Send a held instance's next turn, made of the results waiting for it."""
        held = self._held[instance_id]
        turn = TurnInput(
            instance_id,
            held.name,
            held.history.execution_id,
            held.version,
            len(held.history.events),
            app_id=app_id,
        )
        self._send(instance_id, held.name, held.status, held.custom_status, turn, [], [], held)

    def committed(self, answer: RemoteAnswer, version: int, keep_lease: bool) -> bool:
        """A remote turn was committed at ``version``: keep its instance held with the run's
        history grown by the turn, if it keeps the lease and goes on. Whether it stays held and a
        claim left it out while the turn was out (see :meth:`pass_over`): claim it now."""
        iid = answer.instance_id
        claim = iid in self._passed_over
        self._passed_over.discard(iid)
        output = answer.output
        held = self._held.get(iid)
        if (
            held is None
            or output is None
            or answer.history is None
            or not keep_lease
            or output.is_final
            or output.commit.reset_history
        ):
            return False
        held.history = answer.history
        held.history.extend(output.commit.new_events)
        held.version = version
        held.status = output.commit.status
        held.custom_status = output.commit.custom_status
        if held.waiting:
            self._ready[iid] = None
        return claim

    def release(self, instance_id: str) -> list[Completion]:
        """Stop holding the instance (its lease is let go or lost; it finished); the results
        that waited for its next turn, to deliver through its inbox."""
        self._ready.pop(instance_id, None)
        self._passed_over.discard(instance_id)
        held = self._held.pop(instance_id, None)
        return held.waiting if held is not None else []

    # ---- turns ----------------------------------------------------------------------------
    def send(
        self,
        record: InstanceRecord,
        turn: TurnInput,
        events: list[HistoryEvent],
        consumed: list[int],
        history: RemoteHistory,
    ) -> None:
        """Hand a claimed instance's turn to a remote worker (dispatcher, engine lock held),
        with the results of its activities that waited for it, if it is held here.

        Args:
            record: the claimed instance.
            turn: what the turn starts from (its parent and children are filled in here).
            events: the turn's new events, from the messages it consumes.
            consumed: the ids of those messages.
            history: the run's stored history.
        """
        status = record.status
        if status is OrchestrationStatus.PENDING:
            status = OrchestrationStatus.RUNNING
        elif status is OrchestrationStatus.STALLED:  # as its history left it
            status = (
                OrchestrationStatus.SUSPENDED if history.suspended else OrchestrationStatus.RUNNING
            )
        held = self._held.get(record.instance_id)
        if held is None or held.history.execution_id != record.execution_id:
            held = _Held(record.name, record.version, history, status, record.custom_status)
            self._held[record.instance_id] = held
        held.version, held.history = record.version, history
        self._send(
            record.instance_id, record.name, status, record.custom_status, turn, events,
            consumed, held,
        )  # fmt: skip

    def _send(
        self,
        iid: str,
        name: str,
        status: OrchestrationStatus,
        custom_status: str | None,
        turn: TurnInput,
        events: list[HistoryEvent],
        consumed: list[int],
        held: _Held,
    ) -> None:
        history = held.history
        completions, held.waiting = held.waiting, []
        self._ready.pop(iid, None)
        turn.created_children = list(history.children)
        turn.parent = history.parent
        new_events: list[HistoryEvent] = [
            OrchestratorStarted(timestamp=utcnow(self._clock)),
            *events,
            *(event for _, event in completions),
        ]
        if self._stamp is not None:
            self._stamp(iid, new_events)
        for event in new_events:
            if isinstance(event, ExecutionSuspended):
                status = OrchestrationStatus.SUSPENDED
            elif isinstance(event, ExecutionResumed):
                status = OrchestrationStatus.RUNNING
            elif isinstance(event, ExecutionStarted):
                turn.parent = event.parent
        self._pending[iid] = _RemotePending(
            turn, new_events, consumed, status, custom_status, history, completions
        )
        self.workers.submit_orchestration(
            RemoteTurn(iid, history.execution_id, name, history.events, new_events)
        )

    def complete(
        self,
        instance_id: str,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None = None,
        *,
        wake: bool = True,
    ) -> bool:
        """A remote worker's actions for the instance's turn, with the version it ran and the
        patches it found true (any thread); False if no turn of that instance is out (a late
        or duplicate answer). ``wake=False``: the caller takes the answer in itself, or wakes
        the dispatcher."""
        if instance_id not in self._pending:
            return False
        self._results.put((instance_id, actions, custom_status, version))
        if wake:
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

    def take_abandoned(self) -> list[tuple[str, float, list[Completion]]]:
        """The turns given up since last asked that were still out, each with the monotonic
        time before which its instance is not claimed again and the activity results it
        carried, to deliver through the inbox (dispatcher). The instance is held no more."""
        taken: list[tuple[str, float, list[Completion]]] = []
        while True:
            try:
                iid, not_before = self._abandoned.get_nowait()
            except queue.Empty:
                return taken
            remote = self._pending.pop(iid, None)
            if remote is not None:
                taken.append((iid, not_before, remote.completions + self.release(iid)))

    def take_results(self, plan: Plan, runs_here: RunsHere) -> list[RemoteAnswer]:
        """The answered turns since last asked, each checked against the run's history as
        daprd checks it (:func:`~treadle.core.versioning.settle_turn`) and built into its
        commit (dispatcher). ``plan`` says how many of a turn's activities this runtime
        leases (it hands them to the remote workers once the turn is committed)."""
        taken: list[RemoteAnswer] = []
        while True:
            try:
                iid, actions, custom_status, version = self._results.get_nowait()
            except queue.Empty:
                return taken
            remote = self._pending.pop(iid, None)
            if remote is None:
                continue
            answer = self._answer(iid, remote, actions, custom_status, version, plan, runs_here)
            taken.append(answer)

    def _answer(
        self,
        iid: str,
        remote: _RemotePending,
        actions: list[Action],
        custom_status: str | None,
        version: WorkflowVersion | None,
        plan: Plan,
        runs_here: RunsHere,
    ) -> RemoteAnswer:
        history = remote.history
        settled = settle_turn(
            remote.new_events,
            actions,
            recorded=history.patches,
            recorded_name=history.version_name,
            reported=version,
        )
        now = utcnow(self._clock)
        stall = settled.stall
        if stall is not None:
            if is_recorded_stall(history.events, stall):
                return RemoteAnswer(iid, None, stalled=True, completions=remote.completions)
            logger.warning("workflow instance %s is stalled: %s", iid, stall.description)
            commit = stall_commit(remote.turn, stall, now=now, custom_status=remote.custom_status)
            output = TurnOutput(commit, [], is_final=False)
            return RemoteAnswer(iid, output, stalled=True, completions=remote.completions)
        scheduled = sum(
            1
            for a in settled.actions
            if isinstance(a, ScheduleTask) and runs_here(a.name, a.app_id)
        )
        lease_n, own, still_running = plan(iid, scheduled)
        output = build_turn(
            remote.turn,
            new_events=settled.new_events,
            actions=settled.actions,
            status=remote.status,
            custom_status=custom_status,
            now=now,
            consumed_messages=remote.consumed,
            consumed_activities=[item.id for item, _ in remote.completions],
            lease_activities=lease_n,
            keep_lease=lease_n > 0 or still_running,
            own_activity=own and lease_n == 1 and scheduled == 1,
            runs_here=runs_here,
            propagation=PropagationInput(history.events, history.received, self._app_id)
            if needs_past(settled.actions, history.received)
            else None,
        )
        return RemoteAnswer(iid, output, completions=remote.completions, history=history)
