"""WorkflowClient: start, inspect, signal and manage workflow instances (the Dapr client API)."""

from __future__ import annotations

import contextlib
import enum
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from treadle.core import codec
from treadle.core.context import name_of
from treadle.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    TimerFired,
)
from treadle.core.rerun import plan_rerun
from treadle.errors import (
    FailureDetails,
    InvalidInputError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.store import Store, open_store
from treadle.store import local_starts as local
from treadle.store.base import (
    InstanceQuery,
    InstanceRecord,
    NewActivity,
    NewInstance,
    NewMessage,
    new_execution_id,
)
from treadle.store.capabilities import HandedRecord, InstanceWatcher

MAX_INSTANCE_ID_LENGTH = 256
_KEEP: Any = object()  # "no new input" for a rerun (None is a valid input)


class WorkflowStatus(enum.Enum):
    """The runtime status of a workflow instance (the Dapr SDK's names)."""

    UNKNOWN = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    TERMINATED = 4
    PENDING = 5
    SUSPENDED = 6
    STALLED = 7

    @classmethod
    def from_orchestration_status(cls, status: OrchestrationStatus) -> WorkflowStatus:
        """Map the engine's status onto the Dapr one."""
        return _STATUS_MAP.get(status, cls.UNKNOWN)

    def to_orchestration_status(self) -> OrchestrationStatus:
        """Map the Dapr status onto the engine's one.

        Raises:
            InvalidInputError: UNKNOWN has no engine equivalent.
        """
        for engine, dapr in _STATUS_MAP.items():
            if dapr is self and engine not in _REPORTED_AS_ANOTHER:
                return engine
        raise InvalidInputError(f"status {self.name} cannot be used as a filter")


# engine statuses the Dapr API reports under another one's name (CANCELED as TERMINATED)
_REPORTED_AS_ANOTHER = frozenset(
    {OrchestrationStatus.CONTINUED_AS_NEW, OrchestrationStatus.CANCELED}
)

_STATUS_MAP = {
    OrchestrationStatus.RUNNING: WorkflowStatus.RUNNING,
    OrchestrationStatus.CONTINUED_AS_NEW: WorkflowStatus.RUNNING,
    OrchestrationStatus.COMPLETED: WorkflowStatus.COMPLETED,
    OrchestrationStatus.FAILED: WorkflowStatus.FAILED,
    OrchestrationStatus.CANCELED: WorkflowStatus.TERMINATED,
    OrchestrationStatus.TERMINATED: WorkflowStatus.TERMINATED,
    OrchestrationStatus.PENDING: WorkflowStatus.PENDING,
    OrchestrationStatus.SUSPENDED: WorkflowStatus.SUSPENDED,
    OrchestrationStatus.STALLED: WorkflowStatus.STALLED,
}


@dataclass(frozen=True, slots=True)
class WorkflowState:
    """A snapshot of a workflow instance, as the Dapr SDK reports it.

    Attributes:
        instance_id: the instance's id.
        name: the workflow's name.
        runtime_status: its status.
        created_at: when it was created (UTC).
        last_updated_at: when it last changed (UTC).
        serialized_input: its input as JSON text (None without payloads).
        serialized_output: its output as JSON text.
        serialized_custom_status: its custom status as JSON text.
        failure_details: error_type, message and stack_trace if it failed.
    """

    instance_id: str
    name: str
    runtime_status: WorkflowStatus
    created_at: datetime
    last_updated_at: datetime
    serialized_input: str | None
    serialized_output: str | None
    serialized_custom_status: str | None
    failure_details: FailureDetails | None

    @classmethod
    def from_record(cls, record: InstanceRecord, *, fetch_payloads: bool = True) -> WorkflowState:
        """Build a state from a store record."""
        return cls(
            instance_id=record.instance_id,
            name=record.name,
            runtime_status=WorkflowStatus.from_orchestration_status(record.status),
            created_at=record.created_at,
            last_updated_at=record.updated_at,
            serialized_input=record.input if fetch_payloads else None,
            serialized_output=record.output if fetch_payloads else None,
            serialized_custom_status=record.custom_status if fetch_payloads else None,
            failure_details=record.failure,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this state."""
        failure = self.failure_details
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "runtime_status": self.runtime_status.name,
            "created_at": self.created_at.isoformat(),
            "last_updated_at": self.last_updated_at.isoformat(),
            "serialized_input": self.serialized_input,
            "serialized_output": self.serialized_output,
            "serialized_custom_status": self.serialized_custom_status,
            "failure_details": None
            if failure is None
            else {
                "error_type": failure.error_type,
                "message": failure.message,
                "stack_trace": failure.stack_trace,
            },
        }


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of :meth:`WorkflowClient.list_workflows`.

    Attributes:
        states: the instances, newest first.
        continuation_token: pass it back for the next page; None on the last page.
    """

    states: list[WorkflowState]
    continuation_token: str | None = None


def validate_instance_id(instance_id: Any) -> str:
    """Check an instance id from outside.

    Raises:
        InvalidInputError: not a non-empty string of printable characters up to 256 long.
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInputError("instance_id must be a non-empty string")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInputError(
            f"instance_id is {len(instance_id)} characters long; the limit is "
            f"{MAX_INSTANCE_ID_LENGTH}"
        )
    if not instance_id.isprintable():
        raise InvalidInputError(f"instance_id {instance_id!r} contains control characters")
    return instance_id


class WorkflowClient:
    """Starts and manages workflow instances in a store.

    Args:
        store: a store URL or object; default ``$TREADLE_STORE`` or ``sqlite:///treadle.db``.
            A store object stays open when the client closes (whoever made it may share it,
            with a runtime say); a store the client opened from a URL is closed with it.
        host, port: accepted for Dapr compatibility and ignored (treadle talks to the store).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        host: str | None = None,
        port: str | int | None = None,
        **_dapr_options: Any,
    ) -> None:
        self._store = open_store(store)
        self._owns_store = store is None or isinstance(store, str)

    @property
    def store(self) -> Store:
        """The store this client uses."""
        return self._store

    def close(self) -> None:
        """Release the store's connections, if this client opened the store from a URL."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> WorkflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- starting --------------------------------------------------------------------
    def schedule_new_workflow(
        self,
        workflow: str | Callable[..., Any],
        *,
        input: Any = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        reuse_id_policy: Any = None,
    ) -> str:
        """Start a workflow instance; return its id.

        The start is durable when this returns. A finished instance's id may be reused.

        Args:
            workflow: the workflow function, or its registered name.
            input: a JSON-serializable input.
            instance_id: the id to use (default: a new UUID).
            start_at: do not start before this time (an aware datetime).
            reuse_id_policy: accepted for Dapr compatibility.

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
            InvalidInputError: bad id, input or start time.
        """
        iid = validate_instance_id(instance_id) if instance_id is not None else uuid.uuid4().hex
        if start_at is not None and start_at.tzinfo is None:
            raise InvalidInputError("start_at must be a timezone-aware datetime (UTC)")
        new = NewInstance(
            instance_id=iid,
            name=name_of(workflow),
            input=codec.encode(input),
            execution_id=new_execution_id(),
            scheduled_start=start_at,
        )
        # a runtime of this process on the same store takes it with its first turn
        for runtime in local.starters(self._store.url):
            if runtime.start_here(new):
                return iid
        self._store.create_instance(new)
        return iid

    def rerun_workflow_from_event(
        self,
        instance_id: str,
        event_id: int,
        *,
        new_instance_id: str | None = None,
        input: Any = _KEEP,
    ) -> str:
        """Run a finished instance again as a new instance, from one of its activities.

        The new instance keeps the source's history up to the activity scheduled as
        ``event_id`` (see :meth:`get_workflow_history`): results recorded before it are
        reused, that activity and every later step run again. ``event_id=0`` reruns the
        whole workflow with the same input.

        Args:
            instance_id: the finished source instance.
            event_id: the ``event_id`` of the source's ``TaskScheduled`` event to rerun from.
            new_instance_id: the new instance's id (default: a new UUID).
            input: a new input for the rerun activity (for ``event_id=0``: for the workflow).

        Returns:
            the new instance's id.

        Raises:
            WorkflowNotFoundError: no such source instance.
            WorkflowStateError: the source has not finished.
            InvalidInputError: no activity was scheduled as ``event_id``, or the cut would
                leave a child workflow without its result.
        """
        source = self._require(instance_id)
        if not source.status.is_terminal:
            status = WorkflowStatus.from_orchestration_status(source.status).name
            raise WorkflowStateError(
                f"workflow {instance_id!r} is {status}; only a finished workflow can be rerun "
                "(wait for it, or terminate it first)"
            )
        new_id = (
            validate_instance_id(new_instance_id)
            if new_instance_id is not None
            else uuid.uuid4().hex
        )
        overwrite = input is not _KEEP
        new_input = codec.encode(input) if overwrite else None
        execution_id = new_execution_id()
        if event_id == 0:
            self._store.create_instance(
                NewInstance(
                    instance_id=new_id,
                    name=source.name,
                    input=new_input if overwrite else source.input,
                    execution_id=execution_id,
                )
            )
            return new_id
        plan = plan_rerun(
            self._store.get_history(instance_id),
            event_id,
            instance_id=new_id,
            execution_id=execution_id,
            new_input=new_input,
            overwrite_input=overwrite,
        )
        activities = [
            NewActivity(
                instance_id=new_id,
                execution_id=execution_id,
                task_id=e.event_id,
                name=e.name,
                input=e.input,
                task_execution_id=f"{execution_id}:{e.event_id}",
            )
            for e in plan.activities
        ]
        timers = [
            NewMessage(
                new_id,
                TimerFired(timestamp=e.fire_at, timer_id=e.event_id, fire_at=e.fire_at),
                execution_id=execution_id,
                visible_at=e.fire_at,
            )
            for e in plan.timers
        ]
        self._store.create_instance(
            NewInstance(
                instance_id=new_id,
                name=source.name,
                input=source.input,
                execution_id=execution_id,
                history=plan.history,
                activities=activities,
                messages=timers,
            )
        )
        return new_id

    # ---- reading ---------------------------------------------------------------------
    def get_workflow_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> WorkflowState | None:
        """The instance's state, or None if there is no such instance."""
        record = self._store.get_instance(instance_id)
        return (
            None
            if record is None
            else WorkflowState.from_record(record, fetch_payloads=fetch_payloads)
        )

    def wait_for_workflow_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has started (is no longer PENDING).

        Args:
            timeout_in_seconds: 0 waits without limit.

        Raises:
            TimeoutError: the time ran out first.
        """
        return self._wait(
            instance_id,
            lambda r: r.status is not OrchestrationStatus.PENDING,
            timeout_in_seconds,
            fetch_payloads,
            "start",
        )

    def wait_for_workflow_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has finished (completed, failed or terminated).

        Args:
            timeout_in_seconds: 0 waits without limit.

        Raises:
            TimeoutError: the time ran out first.
        """
        return self._wait(
            instance_id,
            lambda r: r.status.is_terminal,
            timeout_in_seconds,
            fetch_payloads,
            "finish",
        )

    def _wait(
        self,
        instance_id: str,
        done: Callable[[InstanceRecord], bool],
        timeout: float,
        fetch_payloads: bool,
        what: str,
    ) -> WorkflowState | None:
        deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
        # A store that can hand over the final row a commit of this process wrote (a runtime
        # of this process ran the workflow) spares the read after the last wake-up.
        store = self._store
        watching: AbstractContextManager[HandedRecord | None] = (
            store.watching(instance_id)
            if isinstance(store, InstanceWatcher)
            else contextlib.nullcontext(None)
        )
        with watching as handed:
            # Taken before the first read: a change between that read and the wait then ends
            # the wait at once, instead of being missed until the next re-check.
            token = self._store.change_token()
            record: InstanceRecord | None = None
            while True:
                mine, coming = handed() if handed is not None else (None, False)
                if mine is not None and done(mine):
                    return WorkflowState.from_record(mine, fetch_payloads=fetch_payloads)
                if record is None or not coming:  # (coming: it is about to be handed over)
                    record = self._store.get_instance(instance_id)
                    if record is None:
                        return None
                    if done(record):
                        return WorkflowState.from_record(record, fetch_payloads=fetch_payloads)
                wait = 0.5
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        status = WorkflowStatus.from_orchestration_status(record.status)
                        raise TimeoutError(
                            f"workflow {instance_id!r} did not {what} within {timeout} s "
                            f"(status {status.name})"
                        )
                    wait = min(wait, remaining)
                token = self._store.wait_for_work(wait, token)

    def list_workflows(
        self,
        *,
        status: WorkflowStatus | list[WorkflowStatus] | None = None,
        name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> WorkflowPage:
        """A page of instances, newest first, filtered by status, name and creation time."""
        statuses: tuple[OrchestrationStatus, ...] = ()
        if status is not None:
            wanted = [status] if isinstance(status, WorkflowStatus) else list(status)
            engine = [s.to_orchestration_status() for s in wanted]
            if WorkflowStatus.RUNNING in wanted:
                engine.append(OrchestrationStatus.CONTINUED_AS_NEW)
            if WorkflowStatus.TERMINATED in wanted:
                engine.append(OrchestrationStatus.CANCELED)
            statuses = tuple(engine)
        if page_size < 1:
            raise InvalidInputError("page_size must be >= 1")
        page = self._store.list_instances(
            InstanceQuery(
                statuses=statuses,
                name=name,
                created_from=created_from,
                created_to=created_to,
                limit=page_size,
                cursor=continuation_token,
            )
        )
        return WorkflowPage(
            [WorkflowState.from_record(r) for r in page.instances], page.next_cursor
        )

    def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history events, oldest first.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._require(instance_id)
        return self._store.get_history(instance_id)

    # ---- signalling ------------------------------------------------------------------
    def raise_workflow_event(self, instance_id: str, event_name: str, *, data: Any = None) -> None:
        """Send an event to an instance; it is durable when this returns.

        Raises:
            WorkflowNotFoundError: no such instance.
            InvalidInputError: empty event name, or data that is not JSON-serializable.
        """
        if not isinstance(event_name, str) or not event_name:
            raise InvalidInputError("event_name must be a non-empty string")
        event = EventRaised(timestamp=_now(), name=event_name, input=codec.encode(data))
        self._store.send_message(NewMessage(instance_id, event))

    def terminate_workflow(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        """Terminate an instance (and, with ``recursive``, its running children).

        Terminating a finished instance does nothing.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._signal(
            instance_id,
            ExecutionTerminated(timestamp=_now(), input=codec.encode(output), recurse=recursive),
        )

    def pause_workflow(self, instance_id: str) -> None:
        """Suspend an instance; events sent meanwhile are kept and delivered on resume.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._signal(instance_id, ExecutionSuspended(timestamp=_now()))

    def resume_workflow(self, instance_id: str) -> None:
        """Resume a suspended instance.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._signal(instance_id, ExecutionResumed(timestamp=_now()))

    def _signal(self, instance_id: str, event: HistoryEvent) -> None:
        """Send a control event (terminate, suspend, resume) unless the instance finished."""
        if not self._require(instance_id).status.is_terminal:
            self._store.send_message(NewMessage(instance_id, event))

    suspend_workflow = pause_workflow

    def purge_workflow(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance's state (and its children's, with ``recursive``).

        Returns:
            how many instances were deleted (0 if there was none).

        Raises:
            WorkflowStateError: the instance or a child has not finished.
        """
        return self._store.purge_instance(instance_id, recursive=recursive)

    def _require(self, instance_id: str) -> InstanceRecord:
        record = self._store.get_instance(instance_id)
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow instance with id {instance_id!r}; "
                "check the id (list them with `treadle workflow list`)"
            )
        return record


def _now() -> datetime:
    return datetime.now(timezone.utc)
