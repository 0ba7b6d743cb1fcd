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
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

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

# Field numbers: WorkItem.workflowRequest, WorkflowRequest.pastEvents / newEvents.
_WORK_ITEM_REQUEST = spb.WorkItem.DESCRIPTOR.fields_by_name["workflowRequest"].number
_PAST = spb.WorkflowRequest.DESCRIPTOR.fields_by_name["pastEvents"].number
_NEW = spb.WorkflowRequest.DESCRIPTOR.fields_by_name["newEvents"].number


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


@dataclass(frozen=True, slots=True)
class _Encoded:
    """An instance's past history as last sent."""

    execution_id: str
    count: int
    """Events of the stored history it covers."""
    last: HistoryEvent | None
    """The last of them (a later past continues this one if its event there is equal)."""
    suspended: bool
    """Whether the instance is suspended after them, as the SDK sees it."""
    started: bool
    """Whether they hold the run's ExecutionStarted."""
    received: Propagation | None
    """The history propagated to the run (from its ExecutionStarted)."""
    data: bytes
    """The ``pastEvents`` entries of the events shown to the SDK, serialized."""
    recent: dict[int, tuple[HistoryEvent, bytes]]
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

        Raises:
            InvalidInputError: an event has no protobuf form.
        """
        past = turn.past_events
        with self._lock:
            entry = self._entries.get(turn.instance_id)
        if entry is None or not _continues(entry, turn.execution_id, past):
            entry = _Encoded(turn.execution_id, 0, None, False, False, None, b"", {})
        entry = _extend(entry, past)
        suspended, started, received = entry.suspended, entry.started, entry.received
        new_parts: list[bytes] = []
        recent: dict[int, tuple[HistoryEvent, bytes]] = {}
        for event in turn.new_events:
            keep, suspended = keep_for_sdk(event, suspended)
            if not keep:
                continue
            if not started and isinstance(event, ExecutionStarted):
                started, received = True, event.propagated
            encoded = history_event_to_proto(event).SerializeToString()
            recent[id(event)] = (event, encoded)
            new_parts.append(_field(_NEW, encoded))
        entry = dataclasses.replace(entry, recent=recent)
        with self._lock:
            self._entries[turn.instance_id] = entry
            self._entries.move_to_end(turn.instance_id)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        head = spb.WorkflowRequest(
            instanceId=turn.instance_id, executionId=string_value(turn.execution_id)
        )
        # The history propagated to the run travels beside its events, as daprd sends it.
        if received is not None:
            head.propagatedHistory.CopyFrom(propagation_to_proto(received))
        request = b"".join((head.SerializeToString(), entry.data, *new_parts))
        tail = spb.WorkItem(completionToken=token).SerializeToString()
        return _field(_WORK_ITEM_REQUEST, request) + tail

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
    return entry.count == 0 or past[entry.count - 1] == entry.last


def _extend(entry: _Encoded, past: Sequence[HistoryEvent]) -> _Encoded:
    """``entry`` with the events of ``past`` after the ones it covers encoded."""
    if entry.count == len(past):
        return entry
    suspended, started, received = entry.suspended, entry.started, entry.received
    parts = [entry.data]
    for event in past[entry.count :]:
        keep, suspended = keep_for_sdk(event, suspended)
        if not keep:
            continue
        if not started and isinstance(event, ExecutionStarted):
            started, received = True, event.propagated
        known = entry.recent.get(id(event))
        if known is not None and known[0] is event:
            encoded = known[1]  # sent with the last turn as a new event
        else:
            encoded = history_event_to_proto(event).SerializeToString()
        parts.append(_field(_PAST, encoded))
    return _Encoded(
        entry.execution_id,
        len(past),
        past[-1] if past else None,
        suspended,
        started,
        received,
        b"".join(parts),
        {},
    )


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
