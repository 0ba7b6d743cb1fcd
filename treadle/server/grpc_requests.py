"""The work items sent on ``GetWorkItems``, encoded once: each instance's past history is kept
in protobuf form between its turns.

An SDK worker replays a workflow from its whole history at every turn, so every
``WorkflowRequest`` carries the run's past events. Converting them all to protobuf at each
turn made a turn cost O(history), a chain of n steps O(n²). :class:`WorkItemEncoder` keeps,
per instance, the serialized ``pastEvents`` entries of the history it last sent; the next turn
of the same run (whose past is the last one's plus what that turn added) encodes only the new
events and joins the bytes. A protobuf message is its fields' encodings one after another, and a
repeated field may come in pieces, so the bytes are the same message the SDK would get from
one ``SerializeToString``.

The kept encodings are bounded (least recently used first out); an instance whose entry was
dropped, or whose past is not the continuation of it (another run, a history read anew), is
encoded whole, as before.

Each message is joined once from its pieces (the head of the request, kept per run; the kept
past, a view into the message sent before; the new events; the token), not built by
concatenating the growing past several times.

Threads: the server's ``GetWorkItems`` stream threads (an instance's kept encoding is taken out
of the table while one of them encodes a turn of it) and any thread that forgets an instance.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from treadle.core.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestratorCompleted,
    Propagation,
)
from treadle.runtime.remote import RemoteTurn
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_codec import history_event_to_proto, propagation_to_proto
from treadle.server.grpc_values import string_value

__all__ = ["DEFAULT_KEPT", "WorkItemEncoder", "keep_for_sdk"]

DEFAULT_KEPT = 4096
"""How many instances' encoded histories are kept."""

# Events the SDK fails an instance on ("Don't know how to handle event of type ..."): they are
# the engine's bookkeeping, not inputs of the workflow function.
_HIDDEN = (OrchestratorCompleted, ExecutionCompleted, EventSent)

# Field numbers: WorkItem.workflowRequest, WorkflowRequest.pastEvents / newEvents,
# WorkItem.activityRequest.
_WORK_ITEM_REQUEST = spb.WorkItem.DESCRIPTOR.fields_by_name["workflowRequest"].number
_PAST = spb.WorkflowRequest.DESCRIPTOR.fields_by_name["pastEvents"].number
_NEW = spb.WorkflowRequest.DESCRIPTOR.fields_by_name["newEvents"].number
_ACTIVITY_REQUEST = spb.WorkItem.DESCRIPTOR.fields_by_name["activityRequest"].number


def keep_for_sdk(event: HistoryEvent, suspended: bool) -> tuple[bool, bool]:
    """Whether the SDK is shown ``event``, and whether the instance is suspended after it.

    Hidden: the kinds the SDK does not handle, an ``ExecutionResumed`` while the instance is
    not suspended (the SDK fails on it), and an ``ExecutionSuspended`` while it already is (the
    SDK would buffer it and suspend again on resume).
    """
    if isinstance(event, _HIDDEN):
        return False, suspended
    if isinstance(event, ExecutionSuspended):
        return not suspended, True
    if isinstance(event, ExecutionResumed):
        return suspended, False
    return True, suspended


class _Encoded:
    """An instance's past history as last sent (owned by one thread at a time: taken out of
    the encoder's table while a turn of the instance is encoded, put back after)."""

    __slots__ = (
        "count", "execution_id", "head", "head_of", "last", "past", "past_len", "received",
        "recent", "started", "suspended",
    )  # fmt: skip

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.count = 0
        """Events of the stored history it covers."""
        self.last: HistoryEvent | None = None
        """The last of them (a later past continues this one if its event there is equal)."""
        self.suspended = False
        """Whether the instance is suspended after them, as the SDK sees it."""
        self.started = False
        """Whether they hold the run's ExecutionStarted."""
        self.received: Propagation | None = None
        """The history propagated to the run (from its ExecutionStarted)."""
        self.head = b""
        """The ``WorkflowRequest``'s fields before its events, serialized (b"": not yet)."""
        self.head_of: Propagation | None = None
        """The propagated history ``head`` was made with."""
        self.past: list[bytes | memoryview] = []
        """The ``pastEvents`` entries of the events shown to the SDK, serialized, in pieces
        (after a turn, one view into the message last sent)."""
        self.past_len = 0
        """Their length in bytes."""
        self.recent: dict[int, tuple[HistoryEvent, bytes]] = {}
        """The last turn's new events, serialized, by ``id``: they are the next turn's past."""


class WorkItemEncoder:
    """Serializes work items, keeping each instance's encoded past (thread-safe).

    Args:
        kept: how many instances' encodings are kept.
    """

    def __init__(self, kept: int = DEFAULT_KEPT) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Encoded] = OrderedDict()

    def workflow_item(self, turn: RemoteTurn, token: str) -> bytes:
        """The serialized ``WorkItem`` of a turn (a ``WorkflowRequest``) with its token.

        The message is joined once from its pieces; the kept past becomes a view into it.

        Raises:
            InvalidInputError: an event has no protobuf form.
        """
        iid = turn.instance_id
        past = turn.past_events
        with self._lock:  # (taken out: no other thread encodes with it meanwhile)
            entry = self._entries.pop(iid, None)
        if entry is None or not _continues(entry, turn.execution_id, past):
            entry = _Encoded(turn.execution_id)
        _extend(entry, past)
        suspended, started, received = entry.suspended, entry.started, entry.received
        new_parts: list[bytes] = []
        new_len = 0
        recent: dict[int, tuple[HistoryEvent, bytes]] = {}
        for event in turn.new_events:
            keep, suspended = keep_for_sdk(event, suspended)
            if not keep:
                continue
            if not started and isinstance(event, ExecutionStarted):
                started, received = True, event.propagated
            encoded = history_event_to_proto(event).SerializeToString()
            recent[id(event)] = (event, encoded)
            part = _field(_NEW_TAG, encoded)
            new_parts.append(part)
            new_len += len(part)
        entry.recent = recent
        if not entry.head or entry.head_of is not received:
            head = spb.WorkflowRequest(instanceId=iid, executionId=string_value(turn.execution_id))
            # The history propagated to the run travels beside its events, as daprd sends it.
            if received is not None:
                head.propagatedHistory.CopyFrom(propagation_to_proto(received))
            entry.head, entry.head_of = head.SerializeToString(), received
        head_bytes = entry.head
        prefix = _WORK_ITEM_TAG + _varint(len(head_bytes) + entry.past_len + new_len)
        tail = spb.WorkItem(completionToken=token).SerializeToString()
        message = b"".join((prefix, head_bytes, *entry.past, *new_parts, tail))
        if entry.past_len:
            start = len(prefix) + len(head_bytes)
            entry.past = [memoryview(message)[start : start + entry.past_len]]
        with self._lock:
            self._entries[iid] = entry
            self._entries.move_to_end(iid)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return message

    @staticmethod
    def activity_item(request: spb.ActivityRequest, token: str) -> bytes:
        """The serialized ``WorkItem`` of an activity with its token (the request is not
        copied into a ``WorkItem`` message first)."""
        tail = spb.WorkItem(completionToken=token).SerializeToString()
        return _field(_ACTIVITY_TAG, request.SerializeToString()) + tail

    def forget(self, instance_id: str) -> None:
        """Drop an instance's encoding (it finished)."""
        with self._lock:
            self._entries.pop(instance_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _continues(entry: _Encoded, execution_id: str, past: Sequence[HistoryEvent]) -> bool:
    """Whether ``past`` is the history ``entry`` encoded, or a continuation of it."""
    if entry.execution_id != execution_id or entry.count > len(past):
        return False
    if entry.count == 0:
        return True
    last = past[entry.count - 1]
    return last is entry.last or last == entry.last


def _extend(entry: _Encoded, past: Sequence[HistoryEvent]) -> None:
    """Encode the events of ``past`` after the ones ``entry`` covers into it."""
    if entry.count == len(past):
        entry.recent = {}
        return
    suspended, started, received = entry.suspended, entry.started, entry.received
    parts = entry.past
    size = entry.past_len
    recent = entry.recent
    for event in past[entry.count :]:
        keep, suspended = keep_for_sdk(event, suspended)
        if not keep:
            continue
        if not started and isinstance(event, ExecutionStarted):
            started, received = True, event.propagated
        known = recent.get(id(event))
        if known is not None and known[0] is event:
            encoded = known[1]  # sent with the last turn as a new event
        else:
            encoded = history_event_to_proto(event).SerializeToString()
        part = _field(_PAST_TAG, encoded)
        parts.append(part)
        size += len(part)
    entry.count = len(past)
    entry.last = past[-1] if past else None
    entry.suspended, entry.started, entry.received = suspended, started, received
    entry.past_len = size
    entry.recent = {}


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    size = len(payload)
    if size < 0x80:
        return tag + _BYTES[size] + payload
    return tag + _varint(size) + payload


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTES[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_BYTES = [bytes((n,)) for n in range(0x80)]
"""The one-byte varints."""
_WORK_ITEM_TAG = _varint(_WORK_ITEM_REQUEST << 3 | 2)
_PAST_TAG = _varint(_PAST << 3 | 2)
_NEW_TAG = _varint(_NEW << 3 | 2)
_ACTIVITY_TAG = _varint(_ACTIVITY_REQUEST << 3 | 2)
