"""The history file: one instance's history as a versioned JSON document.

``treadle workflow export ID`` and :meth:`WorkflowClient.export_workflow_history` write it;
:class:`treadle.testing.Replayer` and ``treadle replay`` read it. Format version 1::

    {
      "format": "treadle.history",
      "format_version": 1,
      "instance_id": "order-17",
      "workflow": "order",
      "status": "COMPLETED",
      "events": [{"kind": "OrchestratorStarted", "event_id": -1, "timestamp": "..."}, ...]
    }

``events`` are the current run's history events, oldest first, each as
:func:`~treadle.core.history.event_to_dict` gives it (a ``kind`` and the event's fields, times
as ISO 8601 text, payloads as the JSON text they were recorded with). ``status`` is the
instance's status when it was exported (informational). A reader accepts, besides, a bare
JSON list of events (the form of ``treadle workflow history --format json``). A later format
version adds fields; a reader refuses a version newer than it knows, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from treadle.core.history import ExecutionStarted, HistoryEvent, event_from_dict, event_to_dict

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedHistory", "dump_history", "load_history"]

FORMAT = "treadle.history"
"""The value of a history file's ``format`` field."""

FORMAT_VERSION = 1
"""The format version this treadle writes, and the newest it reads."""


@dataclass(frozen=True)
class SavedHistory:
    """A history read from a file.

    Attributes:
        instance_id: the instance it was exported from ("" if the file does not say and its
            ``ExecutionStarted`` has none).
        workflow: the workflow name its ``ExecutionStarted`` records ("" if none).
        events: the events, oldest first.
        status: the status it was exported with, if the file says.
    """

    instance_id: str
    workflow: str
    events: tuple[HistoryEvent, ...]
    status: str | None = None


def dump_history(
    instance_id: str, events: Sequence[HistoryEvent], *, status: str | None = None
) -> str:
    """The history file (format version :data:`FORMAT_VERSION`) of an instance's events."""
    started = next((e for e in events if isinstance(e, ExecutionStarted)), None)
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "instance_id": instance_id,
        "workflow": started.name if started is not None else "",
        "status": status,
        "events": [event_to_dict(e) for e in events],
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def load_history(text: str | bytes) -> SavedHistory:
    """Read a history file (or a bare JSON list of events).

    Raises:
        ValueError: the text is not JSON, not a history file, of a newer format version, or
            holds an event that is malformed (the message says which, by index).
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a history file: not JSON ({exc})") from exc
    status: str | None = None
    instance_id = ""
    if isinstance(document, list):
        raw_events: Any = document
    elif isinstance(document, dict) and document.get("format") == FORMAT:
        version = document.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"history file has a bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"history file has format_version {version}, newer than this treadle reads "
                f"({FORMAT_VERSION}): upgrade treadle to replay it"
            )
        raw_events = document.get("events")
        status = _optional_str(document, "status")
        instance_id = _optional_str(document, "instance_id") or ""
    else:
        raise ValueError(
            f'not a history file: expected an object with "format": "{FORMAT}" (as '
            "`treadle workflow export` writes) or a list of events"
        )
    if not isinstance(raw_events, list):
        raise ValueError('history file: "events" must be a list of events')
    events: list[HistoryEvent] = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            raise ValueError(f"history file: event {index} is not an object: {raw!r:.80}")
        try:
            events.append(event_from_dict(raw))
        except ValueError as exc:
            raise ValueError(f"history file: event {index}: {exc}") from exc
    started = next((e for e in events if isinstance(e, ExecutionStarted)), None)
    if started is None:
        raise ValueError("history file: no ExecutionStarted event, so no workflow to replay")
    return SavedHistory(
        instance_id=instance_id or started.instance_id,
        workflow=started.name,
        events=tuple(events),
        status=status,
    )


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"history file: {key!r} must be a string, not {value!r:.80}")
    return value
