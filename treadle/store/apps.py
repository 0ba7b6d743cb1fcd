"""Apps and workers on one store: who runs what, and the work nobody can take.

Several apps share a store, as Dapr apps share a state store: every instance and every
activity task belongs to one app (an app id; the empty string is the app of workers and
clients that name none), and only that app's workers take it. Within an app, a worker takes
only the workflows and activities it has registered (a ``treadle serve`` sidecar takes any:
its SDK workers register theirs with the SDK, not with the sidecar).

So that work nobody can take is seen and explained rather than failed by a worker that lacks
it, every runtime **advertises** itself in the store (:class:`WorkerInfo`, refreshed by a
heartbeat, marked stopped on shutdown): its app and the names it takes. From the
advertisements (:class:`WorkerRecord`) and the work that waits unclaimed
(:class:`WaitingWork`) a runtime tells why something waits, and fails a call made to another
app that cannot take it (see :mod:`treadle.runtime.apps`).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson

from treadle.core.records import record_class

__all__ = [
    "WaitingWork",
    "WorkKind",
    "WorkerInfo",
    "WorkerRecord",
    "default_app_id",
    "names_from_json",
    "names_json",
]

NOTED_PER_GROUP = 100
"""How many of the instances that wait in one group ``Store.note_waiting`` notes."""

WORKER_RETENTION_S = 86_400.0
"""How long a store keeps the advertisement of a worker stopped or silent."""

APP_ID_VARIABLES = ("TREADLE_APP_ID", "APP_ID")
"""Where :func:`default_app_id` looks, in order (``dapr run --app-id`` sets ``APP_ID``)."""


def default_app_id() -> str:
    """The app id of workers and clients that name none: ``$TREADLE_APP_ID``, else
    ``$APP_ID`` (what ``dapr run --app-id`` sets), else the empty string (no app)."""
    for variable in APP_ID_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return ""


class WorkKind(enum.Enum):
    """What a worker runs: workflow turns or activities."""

    WORKFLOW = "workflow"
    ACTIVITY = "activity"


@record_class
class WorkerInfo:
    """What a worker advertises: its app and the names it takes.

    Attributes:
        owner: the worker's lease owner string (unique per running runtime).
        app_id: its app ("" for none).
        workflows: the workflow names it takes; None: any (a sidecar).
        activities: the activity names it takes; None: any (a sidecar).
    """

    owner: str
    app_id: str
    workflows: tuple[str, ...] | None
    activities: tuple[str, ...] | None

    def takes(self, kind: WorkKind, name: str) -> bool:
        """Whether this worker takes work of ``kind`` named ``name`` (of its app)."""
        names = self.workflows if kind is WorkKind.WORKFLOW else self.activities
        return names is None or name in names


@record_class
class WorkerRecord:
    """A worker's advertisement as stored.

    Attributes:
        info: what it advertised.
        seen_at: its last heartbeat (or its shutdown), on the store's clock.
        stopped: it shut down.
    """

    info: WorkerInfo
    seen_at: datetime
    stopped: bool = False

    def is_live(self, now: datetime, ttl: timedelta) -> bool:
        """Whether the worker runs: not stopped, and heard from within ``ttl`` of ``now``."""
        return not self.stopped and now - self.seen_at <= ttl


@record_class
class WaitingWork:
    """Work of one kind, app and name that waits for a worker: nobody holds it.

    Attributes:
        kind: workflow turns (instances with messages) or activity tasks.
        app_id: the app that must run it.
        name: the workflow or activity name.
        caller_app_id: the app of the instance that asked for it: the calling instance's
            for an activity, the parent's for a child instance; None for a top-level
            instance.
        started: for workflows, whether the instances have started (their first turn ran);
            activities are never started.
        since: when the oldest of them became visible.
        count: how many wait.
    """

    kind: WorkKind
    app_id: str
    name: str
    caller_app_id: str | None
    started: bool
    since: datetime
    count: int


def names_json(names: Sequence[str] | None) -> str | None:
    """How a store keeps a worker's names: a JSON list, or NULL for any name."""
    if names is None:
        return None
    return orjson.dumps(sorted(names)).decode()


def names_from_json(text: str | None) -> tuple[str, ...] | None:
    """The names :func:`names_json` wrote."""
    if text is None:
        return None
    return tuple(str(n) for n in orjson.loads(text))
