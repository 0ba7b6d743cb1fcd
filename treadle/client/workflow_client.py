"""WorkflowClient: start, inspect, signal and manage workflow instances (the Dapr client API).

It takes and returns Python values: it encodes them to JSON text and hands every operation to
:class:`~treadle.client.operations.InstanceOperations`, the layer the gRPC sidecar and the HTTP
API use too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from treadle.client.operations import InstanceOperations
from treadle.client.queues import OPERATOR, check_queue, queue_store
from treadle.client.schedules import ScheduleDescription, ScheduleOperations
from treadle.client.state import WorkflowPage, WorkflowState
from treadle.client.status import WorkflowStatus
from treadle.core import codec
from treadle.core.context import name_of
from treadle.core.history import HistoryEvent
from treadle.core.history_file import dump_history
from treadle.store import Store, open_store
from treadle.store.apps import default_app_id
from treadle.store.base import InstanceRecord
from treadle.store.queues import Queue, QueueLimits

__all__ = ["WorkflowClient"]

_KEEP: Any = object()  # "no new input" for a rerun (None is a valid input)


class WorkflowClient:
    """Starts and manages workflow instances in a store.

    Args:
        store: a store URL or object; default ``$TREADLE_STORE`` or ``sqlite:///treadle.db``.
            A store object stays open when the client closes (whoever made it may share it,
            with a runtime say); a store the client opened from a URL is closed with it.
        host, port, logger_options: accepted for Dapr compatibility and ignored (treadle
            talks to the store; it logs through the ``treadle`` loggers).
        app_id: the app whose workers run the workflows this client starts, as a Dapr client
            starts them in its sidecar's app. Default ``$TREADLE_APP_ID``, else ``$APP_ID``
            (what ``dapr run --app-id`` sets), else none ("").
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        host: str | None = None,
        port: str | int | None = None,
        logger_options: Any = None,
        app_id: str | None = None,
        **_dapr_options: Any,
    ) -> None:
        self._store = open_store(store)
        self._owns_store = store is None or isinstance(store, str)
        app = default_app_id() if app_id is None else app_id
        # Its payloads come from codec.encode: JSON by construction, not parsed again.
        self._ops = InstanceOperations(self._store, check_payloads=False, app_id=app)
        self._schedules: ScheduleOperations | None = None
        self._wire_ops = InstanceOperations(self._store, app_id=app)

    @property
    def app_id(self) -> str:
        """The app of the workflows this client starts ("" for none)."""
        return self._ops.app_id

    @property
    def store(self) -> Store:
        """The store this client uses."""
        return self._store

    @property
    def operations(self) -> InstanceOperations:
        """The same operations with payloads as JSON text, checked (what the servers use)."""
        return self._wire_ops

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
        timeout: timedelta | None = None,
    ) -> str:
        """Start a workflow instance; return its id.

        The start is durable when this returns. A finished instance's id may be reused.

        Args:
            workflow: the workflow function, or its registered name.
            input: a JSON-serializable input.
            instance_id: the id to use (default: a new UUID).
            start_at: do not start before this time (an aware datetime).
            reuse_id_policy: accepted for Dapr compatibility.
            timeout: fail the run with a TimeoutError (status FAILED; its running activities
                are told to stop, its children terminated) if it has not finished this long
                after it started. A run that continues as new starts without one.

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
            InvalidInputError: bad id, name, input, start time or timeout.
        """
        return self._ops.create(
            name_of(workflow),
            input=codec.encode(input),
            instance_id=instance_id,
            start_at=start_at,
            timeout=timeout,
        )

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
        overwrite = input is not _KEEP
        return self._ops.rerun(
            instance_id,
            event_id,
            new_instance_id=new_instance_id,
            input=codec.encode(input) if overwrite else None,
            overwrite_input=overwrite,
        )

    # ---- reading ---------------------------------------------------------------------
    def get_workflow_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> WorkflowState | None:
        """The instance's state, or None if there is no such instance.

        Raises:
            InvalidInputError: a malformed id.
        """
        record = self._ops.get(instance_id)
        return _state_of(record, fetch_payloads)

    def wait_for_workflow_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has started (is no longer PENDING).

        Args:
            timeout_in_seconds: 0 waits without limit.

        Raises:
            TimeoutError: the time ran out first.
        """
        record = self._ops.wait_for_start(instance_id, timeout_s=_limit(timeout_in_seconds))
        return _state_of(record, fetch_payloads)

    def wait_for_workflow_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has finished (completed, failed or terminated).

        Args:
            timeout_in_seconds: 0 waits without limit.

        Raises:
            TimeoutError: the time ran out first.
        """
        record = self._ops.wait_for_completion(instance_id, timeout_s=_limit(timeout_in_seconds))
        return _state_of(record, fetch_payloads)

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
        wanted = (
            [] if status is None else [status] if isinstance(status, WorkflowStatus) else status
        )
        page = self._ops.list_instances(
            statuses=[s.to_orchestration_status() for s in wanted],
            name=name,
            created_from=created_from,
            created_to=created_to,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        return WorkflowPage(
            [WorkflowState.from_record(r) for r in page.instances], page.next_cursor
        )

    def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history events, oldest first.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        return self._ops.get_history(instance_id)

    def export_workflow_history(self, instance_id: str) -> str:
        """The instance's current run as a history file (JSON text, the versioned format of
        :mod:`treadle.core.history_file`): what ``treadle workflow export`` prints and
        :class:`treadle.testing.Replayer` replays.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        events = self.get_workflow_history(instance_id)
        state = self.get_workflow_state(instance_id, fetch_payloads=False)
        status = state.runtime_status.name if state is not None else None
        return dump_history(instance_id, events, status=status)

    # ---- signalling ------------------------------------------------------------------
    def raise_workflow_event(self, instance_id: str, event_name: str, *, data: Any = None) -> None:
        """Send an event to an instance; it is durable when this returns.

        Raises:
            WorkflowNotFoundError: no such instance.
            InvalidInputError: a bad event name, or data that is not JSON-serializable.
        """
        self._ops.raise_event(instance_id, event_name, data=codec.encode(data))

    def terminate_workflow(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        """Terminate an instance (and, with ``recursive``, its running children).

        Terminating a finished instance does nothing.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._ops.terminate(instance_id, output=codec.encode(output), recursive=recursive)

    def pause_workflow(self, instance_id: str) -> None:
        """Suspend an instance; events sent meanwhile are kept and delivered on resume.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._ops.suspend(instance_id)

    def resume_workflow(self, instance_id: str) -> None:
        """Resume a suspended instance.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._ops.resume(instance_id)

    suspend_workflow = pause_workflow

    def purge_workflow(self, instance_id: str, recursive: bool = True) -> int:
        """Delete a finished instance's state (and its children's, with ``recursive``).

        Returns:
            how many instances were deleted (0 if there was none).

        Raises:
            WorkflowStateError: the instance or a child has not finished.
        """
        return self._ops.purge(instance_id, recursive=recursive)

    def purge_workflows(
        self,
        *,
        status: WorkflowStatus | list[WorkflowStatus] | None = None,
        name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        finished_before: datetime | None = None,
        recursive: bool = True,
        dry_run: bool = False,
    ) -> int:
        """Delete the finished instances that match every filter given (and their children,
        with ``recursive``), in short batches; needs no worker running.

        Unfinished instances are never purged, nor an instance whose child has not finished.

        Args:
            status: only these (any finished status if None).
            name: only this workflow.
            created_from: created at or after.
            created_to: created before.
            finished_before: finished before (an aware datetime).
            dry_run: delete nothing; count what would be deleted (children not counted).

        Returns:
            how many instances were deleted (or, with ``dry_run``, match).
        """
        wanted = (
            [] if status is None else [status] if isinstance(status, WorkflowStatus) else status
        )
        return self._ops.purge_matching(
            statuses=[s.to_orchestration_status() for s in wanted],
            name=name,
            created_from=created_from,
            created_to=created_to,
            finished_before=finished_before,
            recursive=recursive,
            dry_run=dry_run,
        ).deleted

    # ---- schedules (see treadle.store.schedules) ------------------------------------------
    @property
    def schedules(self) -> ScheduleOperations:
        """The schedule operations with JSON-text inputs (the HTTP API's and the CLI's)."""
        if self._schedules is None:
            self._schedules = ScheduleOperations(self._store, app_id=self._ops.app_id)
        return self._schedules

    def create_schedule(
        self,
        schedule_id: str,
        workflow: str | Callable[..., Any],
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        input: Any = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        overlap: str = "skip",
        catchup_window: timedelta = timedelta(hours=1),
        time_zone: str = "UTC",
        replace: bool = False,
    ) -> str:
        """Create a durable schedule that starts ``workflow`` at every slot; return its id.

        Every running runtime of the store fires its slots, each exactly once; the instance
        a slot starts has the id ``{schedule_id}@{slot}`` (``nightly@2026-12-07T03:00:00Z``).

        Args:
            schedule_id: the schedule's id (no ``@``).
            workflow: the workflow function, or its registered name.
            cron: a 5-field cron expression (``"*/5 * * * *"``), read in ``time_zone``.
            every: or an interval (a second or more), counted from ``start_at`` (or now).
            input: a JSON-serializable input every instance gets.
            start_at: no slot before this (an aware datetime).
            end_at: no slot after this.
            overlap: when the instance its last slot started has not finished: ``"skip"``
                the slot, ``"buffer_one"`` (the slot waits for it; one at most), or
                ``"allow"`` (start anyway).
            catchup_window: slots missed while no runtime ran fire if at most this old.
            time_zone: the IANA zone the cron expression is read in (``"Europe/Paris"``).
            replace: replace a schedule with this id (else it is refused).

        Raises:
            InvalidInputError: a bad id, name, input or spec.
            ScheduleAlreadyExistsError: the id is taken (and not ``replace``).
        """
        return self.schedules.create(
            schedule_id,
            name_of(workflow),
            cron=cron,
            every=every,
            input=codec.encode(input),
            start_at=start_at,
            end_at=end_at,
            overlap=overlap,
            catchup_window=catchup_window,
            time_zone=time_zone,
            replace=replace,
        )

    def get_schedule(self, schedule_id: str) -> ScheduleDescription | None:
        """The schedule (its spec, next slot and latest runs), or None if there is none."""
        return self.schedules.get(schedule_id)

    def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by id."""
        return self.schedules.list()

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop firing a schedule until it is resumed.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        self.schedules.pause(schedule_id)

    def resume_schedule(self, schedule_id: str) -> None:
        """Fire a paused schedule again, from its next slot after now.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        self.schedules.resume(schedule_id)

    def trigger_schedule(self, schedule_id: str) -> str:
        """Start the schedule's workflow now (whatever its overlap policy); return the
        instance id.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        return self.schedules.trigger(schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; the instances it started stay.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        self.schedules.delete(schedule_id)

    # ---- queues (see treadle.store.queues) ------------------------------------------------
    def list_queue_limits(self) -> list[QueueLimits]:
        """The limits of every queue, as the store keeps them for every worker, by name
        (each with whether an operator pinned them, who wrote them last, and when)."""
        return queue_store(self._store).list_queue_limits()

    def set_queue_limits(self, queue: Queue) -> QueueLimits | None:
        """Set and pin the limits of a queue for every worker of the store at once (for
        example ``wf.Queue("payments", concurrency=5)``): workers' registrations no longer
        change them until :meth:`release_queue_limits`. Returns the limits it replaced.

        Raises:
            TypeError: ``queue`` is not a ``wf.Queue``.
        """
        return queue_store(self._store).put_queue_limits(
            check_queue(queue), by=OPERATOR, pinned=True
        )

    def release_queue_limits(self, name: str) -> bool:
        """Unpin a queue's limits: they hold until a worker registering the queue starts,
        whose registration replaces them. False if the store has no limits for it."""
        return queue_store(self._store).release_queue_limits(name)


def _limit(timeout_in_seconds: float) -> float | None:
    """The Dapr SDK's timeout (0 or less: none) as a limit for the operations."""
    return timeout_in_seconds if timeout_in_seconds and timeout_in_seconds > 0 else None


def _state_of(record: InstanceRecord | None, fetch_payloads: bool) -> WorkflowState | None:
    """The state of ``record`` (None for no instance)."""
    return (
        None if record is None else WorkflowState.from_record(record, fetch_payloads=fetch_payloads)
    )
