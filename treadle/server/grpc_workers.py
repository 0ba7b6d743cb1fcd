"""The work-item queues between the runtime and the SDK workers connected to ``treadle serve``.

:class:`SidecarWorkers` implements :class:`~treadle.runtime.remote.RemoteWorkers`: the runtime
submits workflow turns and activities, and every ``GetWorkItems`` stream (one per connected SDK
worker) takes them in turn. Each submission becomes a ticket with a completion token; a ticket
stays outstanding on the stream that received it until a ``Complete*Task`` call takes it back.
When a stream closes (the worker disconnected or was killed), its outstanding and unsent tickets
go back to the front of the queue, to the next connected worker.

A completion must answer work the server handed out: with a token (the Python SDK echoes the
one sent with the work item), that of a ticket sent to a worker; tokens are random, so only a
worker that received the item knows its token. Without one (the JavaScript SDK sends none), by
instance id (and task id for an activity) of a ticket outstanding on a stream of the caller's
own connection (the peer address the SDK's one channel shares between its stream and its
answers). Anything else is refused: a client with the API token cannot complete work it was
never given.

This module also builds the ``WorkflowRequest`` and ``ActivityRequest`` messages, and hides from
the SDK the history events it does not understand (:func:`events_for_sdk`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import field

from treadle.core.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    TraceContext,
)
from treadle.core.records import record_class
from treadle.runtime.remote import RemoteTurn
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_codec import history_event_to_proto, propagation_to_proto
from treadle.server.grpc_values import string_value, trace_to_proto
from treadle.store.base import ActivityWorkItem

__all__ = [
    "SidecarWorkers",
    "Ticket",
    "WorkStream",
    "activity_request",
    "events_for_sdk",
    "workflow_request",
]

# Events the SDK fails an instance on ("Don't know how to handle event of type ..."): they are
# the engine's bookkeeping, not inputs of the workflow function.
_HIDDEN = (OrchestratorCompleted, ExecutionCompleted, EventSent)


def events_for_sdk(
    past: Sequence[HistoryEvent], new: Sequence[HistoryEvent]
) -> tuple[list[HistoryEvent], list[HistoryEvent]]:
    """The past and new events of a turn as the SDK can replay them.

    Drops the kinds the SDK does not handle, an ``ExecutionResumed`` while the instance is not
    suspended (the SDK fails on it), and an ``ExecutionSuspended`` while it already is (the SDK
    would buffer it and suspend again on resume). Both lists are filtered with the same running
    state, so every turn shows the SDK the same view of the stored history.
    """
    suspended = False

    def keep(event: HistoryEvent) -> bool:
        nonlocal suspended
        if isinstance(event, _HIDDEN) or (
            isinstance(event, ExecutionTerminated) and event.timed_out
        ):
            return False
        if isinstance(event, ExecutionSuspended):
            if suspended:
                return False
            suspended = True
        elif isinstance(event, ExecutionResumed):
            if not suspended:
                return False
            suspended = False
        return True

    kept_past = [e for e in past if keep(e)]
    kept_new = [e for e in new if keep(e)]
    return kept_past, kept_new


def workflow_request(turn: RemoteTurn) -> spb.WorkflowRequest:
    """The ``WorkflowRequest`` for a turn (its new events start with OrchestratorStarted).

    Raises:
        InvalidInputError: an event has no protobuf form.
    """
    past, new = events_for_sdk(turn.past_events, turn.new_events)
    request = spb.WorkflowRequest(
        instanceId=turn.instance_id,
        executionId=string_value(turn.execution_id),
        pastEvents=[history_event_to_proto(e) for e in past],
        newEvents=[history_event_to_proto(e) for e in new],
    )
    # The history propagated to the run travels beside its events, as daprd sends it.
    received = next((e.propagated for e in (*past, *new) if isinstance(e, ExecutionStarted)), None)
    if received is not None:
        request.propagatedHistory.CopyFrom(propagation_to_proto(received))
    return request


def activity_request(
    item: ActivityWorkItem, trace: TraceContext | None = None
) -> spb.ActivityRequest:
    """The ``ActivityRequest`` for a claimed activity; ``trace``: its parent (the calling
    run's span), if traced."""
    request = spb.ActivityRequest(
        name=item.name,
        input=string_value(item.input),
        workflowInstance=opb.WorkflowInstance(
            instanceId=item.instance_id, executionId=string_value(item.execution_id)
        ),
        taskId=item.task_id,
        taskExecutionId=item.task_execution_id,
    )
    if item.propagated is not None:
        request.propagatedHistory.CopyFrom(propagation_to_proto(item.propagated))
    if trace is not None:
        request.parentTraceContext.CopyFrom(trace_to_proto(trace))
    return request


@record_class(frozen=False, eq=False)
class Ticket:
    """One submitted work item, from submission until its completion is taken.

    Attributes:
        token: the completion token sent with it.
        turn: the workflow turn, for a workflow work item.
        activity: the activity, for an activity work item.
        stream: the stream it was sent on and awaits an answer from (None while queued).
        sent: it was sent to a worker at least once (so its token is known outside).
        sent_at: when it was last sent (``time.monotonic()``; 0.0 before).
    """

    token: str
    turn: RemoteTurn | None = None
    activity: ActivityWorkItem | None = None
    stream: WorkStream | None = None
    sent: bool = False
    sent_at: float = 0.0

    @property
    def instance_id(self) -> str:
        """The instance the work item belongs to."""
        if self.turn is not None:
            return self.turn.instance_id
        assert self.activity is not None
        return self.activity.instance_id


@record_class(frozen=False, eq=False)
class WorkStream:
    """One connected ``GetWorkItems`` stream.

    Attributes:
        id: a number for logs.
        peer: the remote address, for logs.
        queue: tickets assigned to it and not sent yet.
        outstanding: tickets sent on it and not completed, by token.
        closed: it was disconnected; it takes no more work.
        wakeup: notified when work is dealt to it or it is closed (on the queues' lock: a
            submission wakes the one stream it went to, not every stream).
    """

    id: int
    peer: str
    queue: deque[Ticket] = field(default_factory=deque)
    outstanding: dict[str, Ticket] = field(default_factory=dict)
    closed: bool = False
    wakeup: threading.Condition = field(default_factory=threading.Condition)


class SidecarWorkers:
    """Work queues for the SDK workers connected over ``GetWorkItems`` (thread-safe).

    The runtime calls :meth:`submit_orchestration` and :meth:`submit_activity`; the gRPC
    service calls :meth:`connect`, :meth:`next_ticket` and :meth:`disconnect` for each stream
    and :meth:`take_workflow` / :meth:`take_activity` when a completion arrives.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._unassigned: deque[Ticket] = deque()
        self._streams: list[WorkStream] = []
        self._next_stream = 0
        self._tickets: dict[str, Ticket] = {}
        self._workflow_tokens: dict[str, str] = {}
        self._activity_tokens: dict[tuple[str, int], list[str]] = {}
        self._stream_ids = itertools.count(1)
        self._closed = False

    # ---- RemoteWorkers (called by the runtime's dispatcher) ------------------------------
    def submit_orchestration(self, turn: RemoteTurn) -> None:
        """Queue a workflow turn for the next SDK worker in turn."""
        with self._cond:
            ticket = self._new_ticket(turn=turn)
            self._workflow_tokens[turn.instance_id] = ticket.token
            self._assign([ticket], front=False)

    def submit_activity(self, item: ActivityWorkItem) -> None:
        """Queue an activity for the next SDK worker in turn."""
        with self._cond:
            ticket = self._new_ticket(activity=item)
            key = (item.instance_id, item.task_id)
            self._activity_tokens.setdefault(key, []).append(ticket.token)
            self._assign([ticket], front=False)

    def has_workers(self) -> bool:
        """Whether an SDK worker is connected."""
        with self._cond:
            return bool(self._streams)

    def withdraw_orchestration(self, instance_id: str) -> bool:
        """Drop the instance's turn if it waits in a queue, sent to no worker yet (the
        runtime gives it up and claims the instance again); False if a worker has it."""
        with self._cond:
            token = self._workflow_tokens.get(instance_id)
            ticket = self._tickets.get(token) if token is not None else None
            if ticket is None or ticket.stream is not None:
                return False
            self._forget(ticket)
            return True

    # ---- streams (called by the gRPC service) ----------------------------------------------
    @property
    def connected(self) -> int:
        """How many streams are connected."""
        with self._cond:
            return len(self._streams)

    @property
    def pending(self) -> int:
        """How many work items are submitted and not completed."""
        with self._cond:
            return len(self._tickets)

    def connect(self, peer: str = "") -> WorkStream:
        """Register a new stream; work waiting for a worker is shared out again."""
        with self._cond:
            stream = WorkStream(
                next(self._stream_ids),
                peer,
                closed=self._closed,
                wakeup=threading.Condition(self._lock),
            )
            if not self._closed:
                self._streams.append(stream)
                waiting = list(self._unassigned)
                self._unassigned.clear()
                self._assign(waiting, front=False)
            return stream

    def next_ticket(self, stream: WorkStream, timeout: float) -> Ticket | None:
        """The next ticket for ``stream``, now outstanding on it; None after ``timeout`` s
        or once the stream is closed."""
        with self._cond:
            if not stream.queue and not stream.closed:
                stream.wakeup.wait(timeout)
            if stream.closed or not stream.queue:
                return None
            ticket = stream.queue.popleft()
            ticket.stream = stream
            ticket.sent = True
            ticket.sent_at = time.monotonic()
            stream.outstanding[ticket.token] = ticket
            return ticket

    def disconnect(self, stream: WorkStream) -> None:
        """Close ``stream``; its outstanding, then its unsent, tickets go back to the front of
        the queue, in that order (idempotent)."""
        with self._cond:
            if stream not in self._streams:
                stream.closed = True
                return
            self._streams.remove(stream)
            stream.closed = True
            back = list(stream.outstanding.values()) + list(stream.queue)
            stream.outstanding.clear()
            stream.queue.clear()
            for ticket in back:
                ticket.stream = None
            self._assign(back, front=True)
            stream.wakeup.notify_all()

    def close(self) -> None:
        """Close every stream (server shutdown); later streams are closed at once."""
        with self._cond:
            self._closed = True
            for stream in list(self._streams):
                stream.closed = True
                stream.wakeup.notify_all()

    # ---- completions ------------------------------------------------------------------------
    def take_workflow(self, token: str, instance_id: str, peer: str) -> RemoteTurn | None:
        """Take back the outstanding turn a ``WorkflowResponse`` answers.

        With a ``token``: the turn of ``instance_id`` sent with that token. Without one: the
        turn of ``instance_id``, if it is outstanding on a stream from ``peer`` (the caller's
        address).

        Returns:
            the turn, or None if no such turn is outstanding (a late or duplicate answer, or
            one for work this caller was never given).
        """
        with self._cond:
            if token:
                ticket = self._tickets.get(token)
                if ticket is None or not ticket.sent or ticket.instance_id != instance_id:
                    return None
            else:
                found = self._workflow_tokens.get(instance_id)
                ticket = self._tickets.get(found) if found is not None else None
                if ticket is None or ticket.stream is None or ticket.stream.peer != peer:
                    return None
            if ticket.turn is None:
                return None
            self._forget(ticket)
            return ticket.turn

    def take_activity(
        self, token: str, instance_id: str, task_id: int, peer: str
    ) -> ActivityWorkItem | None:
        """The activity of :meth:`take_activity_ticket`'s ticket, if any."""
        ticket = self.take_activity_ticket(token, instance_id, task_id, peer)
        return ticket.activity if ticket is not None else None

    def take_activity_ticket(
        self, token: str, instance_id: str, task_id: int, peer: str
    ) -> Ticket | None:
        """Take back the outstanding activity an ``ActivityResponse`` answers, with its ticket
        (when it was sent).

        With a ``token``: the activity of that instance and task sent with that token.
        Without one: the oldest activity of that instance and task outstanding on a stream
        from ``peer`` (the caller's address).

        Returns:
            its ticket, or None if none is outstanding (a late or duplicate answer, or one
            for work this caller was never given).
        """
        with self._cond:
            ticket: Ticket | None = None
            if token:
                ticket = self._tickets.get(token)
                if ticket is None or not ticket.sent:
                    return None
            else:
                for candidate in self._activity_tokens.get((instance_id, task_id), []):
                    held = self._tickets[candidate]
                    if held.stream is not None and held.stream.peer == peer:
                        ticket = held
                        break
            item = ticket.activity if ticket is not None else None
            if ticket is None or item is None:
                return None
            if (item.instance_id, item.task_id) != (instance_id, task_id):
                return None
            self._forget(ticket)
            return ticket

    def forget(self, ticket: Ticket) -> None:
        """Drop a ticket that cannot be sent (its turn is given back to the runtime)."""
        with self._cond:
            self._forget(ticket)

    # ---- internals (lock held) -----------------------------------------------------------
    def _new_ticket(
        self, *, turn: RemoteTurn | None = None, activity: ActivityWorkItem | None = None
    ) -> Ticket:
        # random: a token is the proof that its work item was handed to the caller
        ticket = Ticket(os.urandom(16).hex(), turn, activity)  # (secrets' own source)
        self._tickets[ticket.token] = ticket
        return ticket

    def _assign(self, tickets: Iterable[Ticket], *, front: bool) -> None:
        """Deal tickets out to the streams round-robin (or keep them until one connects)."""
        batch = list(tickets)
        if not batch:
            return
        if not self._streams:
            if front:
                self._unassigned.extendleft(reversed(batch))
            else:
                self._unassigned.extend(batch)
            return
        if len(batch) == 1:  # (a submission: the usual case)
            stream = self._streams[self._next_stream % len(self._streams)]
            self._next_stream += 1
            if front:
                stream.queue.appendleft(batch[0])
            else:
                stream.queue.append(batch[0])
            stream.wakeup.notify()
            return
        per_stream: dict[int, list[Ticket]] = {}
        for ticket in batch:
            stream = self._streams[self._next_stream % len(self._streams)]
            self._next_stream += 1
            per_stream.setdefault(stream.id, []).append(ticket)
        for stream in self._streams:
            mine = per_stream.get(stream.id)
            if not mine:
                continue
            if front:
                stream.queue.extendleft(reversed(mine))
            else:
                stream.queue.extend(mine)
            stream.wakeup.notify()

    def _forget(self, ticket: Ticket) -> None:
        if self._tickets.pop(ticket.token, None) is None:
            return
        if ticket.turn is not None:
            iid = ticket.turn.instance_id
            if self._workflow_tokens.get(iid) == ticket.token:
                del self._workflow_tokens[iid]
        if ticket.activity is not None:
            key = (ticket.activity.instance_id, ticket.activity.task_id)
            tokens = self._activity_tokens.get(key, [])
            if ticket.token in tokens:
                tokens.remove(ticket.token)
            if not tokens:
                self._activity_tokens.pop(key, None)
        stream = ticket.stream
        if stream is not None:
            stream.outstanding.pop(ticket.token, None)
        else:
            for queue in (self._unassigned, *(s.queue for s in self._streams)):
                if ticket in queue:
                    queue.remove(ticket)
                    break
        ticket.stream = None
