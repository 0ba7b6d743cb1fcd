"""The one layer that turns requests into instance operations on a store, with payloads as
JSON text.

Every edge goes through :class:`InstanceOperations`: the Python
:class:`~treadle.client.WorkflowClient` (which encodes Python values to JSON text first), the
gRPC sidecar service and the HTTP API (which pass on the JSON text they received). So ids and
names are checked in one place (:mod:`treadle.core.validation`), a payload is stored as the
JSON text given and never re-encoded, an operation on a finished instance does the same
whoever asks, and every start offers itself first to a runtime of this process on the same
store (:mod:`treadle.store.local_starts`), which commits it with its first turn.

Runs on the caller's thread; it holds no state but the store, so one object serves any number
of threads at once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from treadle.client.counts import count_by_name
from treadle.client.rerun import rerun_instance
from treadle.client.status import WorkflowStatus, matching
from treadle.client.tracing import create_span, may_trace
from treadle.client.waiting import wait_for
from treadle.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    TraceContext,
)
from treadle.core.validation import (
    check_json,
    validate_instance_id,
    validate_name,
    validate_token,
)
from treadle.errors import InvalidInputError, WorkflowNotFoundError, WorkflowStateError
from treadle.store import ids, local_starts
from treadle.store.base import (
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    NewInstance,
    NewMessage,
    Store,
    new_execution_id,
)
from treadle.store.retention import PurgeFilter, PurgeOutcome, purge_by_filter

__all__ = ["InstanceOperations", "PurgeOutcome"]

logger = logging.getLogger(__name__)


class InstanceOperations:
    """Start, inspect, signal and manage the workflow instances of a store; payloads are JSON
    text, stored as given.

    Every operation that names an instance checks its id, and raises
    :class:`~treadle.errors.InvalidInputError` for a malformed one (an id no instance can have);
    names and payloads are checked likewise.

    Args:
        store: the store holding the instances.
        check_payloads: check that payloads are JSON text. Only a caller that makes them with
            :func:`treadle.core.codec.encode` (the Python client) turns it off, which spares
            parsing them once more.
        control_wait_s: how long a terminate, suspend or resume waits at most for a worker to
            take it, so that the state read next shows it (see :meth:`suspend`).
        app_id: the app the instances it starts belong to ("" for none): only that app's
            workers run them (see :mod:`treadle.store.apps`).
    """

    def __init__(
        self,
        store: Store,
        *,
        check_payloads: bool = True,
        control_wait_s: float = 10.0,
        app_id: str = "",
    ) -> None:
        self._store = store
        self._check_payloads = check_payloads
        self.control_wait_s = control_wait_s
        """How long :meth:`terminate`, :meth:`suspend` and :meth:`resume` wait at most for a
        worker to take the request (0: not at all)."""
        self.app_id = app_id
        """The app of the instances this starts."""

    @property
    def store(self) -> Store:
        """The store the operations work on."""
        return self._store

    # ---- starting --------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        input: str | None = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        timeout: timedelta | None = None,
        trace: TraceContext | None = None,
    ) -> str:
        """Start a workflow instance; return its id. The start is durable when this returns.

        A running runtime of this process on the same store takes the start first, and
        commits it with the instance's first turn; otherwise the instance is created in the
        store for any worker to run. A finished instance's id may be reused.

        Args:
            name: the workflow's name (it may be registered by no worker yet).
            input: the input as JSON text (None or empty: no input).
            instance_id: the id to use (default: a new UUID).
            start_at: do not start before this time (an aware datetime).
            timeout: fail its run with a TimeoutError if it has not finished this long after
                it was started (or after ``start_at``).
            trace: the trace context of the start's caller (an SDK client's, through
                ``treadle serve``); default: the current OpenTelemetry span's, if any (see
                :mod:`treadle.client.tracing`).

        Raises:
            WorkflowAlreadyExistsError: an unfinished instance has this id.
            InvalidInputError: a bad id, name, input, start time or timeout.
        """
        iid = (
            validate_instance_id(instance_id) if instance_id is not None else ids.new_instance_id()
        )
        if start_at is not None and start_at.tzinfo is None:
            raise InvalidInputError("start_at must be a timezone-aware datetime (UTC)")
        timeout_at = None
        if timeout is not None:
            if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
                raise InvalidInputError(
                    f"a workflow's timeout is a positive timedelta, not {timeout!r}"
                )
            timeout_at = max(start_at or _now(), _now()) + timeout
        name = validate_name(name, "workflow name")
        new = NewInstance(
            instance_id=iid,
            name=name,
            input=self._payload(input, "input"),
            execution_id=new_execution_id(),
            scheduled_start=start_at,
            app_id=self.app_id,
            timeout_at=timeout_at,
            trace=trace,
        )
        if not may_trace():  # (no OpenTelemetry, or no span current: no span, as create_span says)
            self._start(new)
            return iid
        with create_span(name, iid) as traced:
            if trace is None and traced is not None:
                new = dataclasses.replace(new, trace=traced)
            self._start(new)
        return iid

    def _start(self, new: NewInstance) -> None:
        """Hand ``new`` to a running runtime of this process on the same store, or create it
        in the store for any worker to run."""
        for runtime in local_starts.starters(self._store.url):
            if runtime.start_here(new):
                return
        self._store.create_instance(new)

    def rerun(
        self,
        source_instance_id: str,
        event_id: int,
        *,
        new_instance_id: str | None = None,
        input: str | None = None,
        overwrite_input: bool = False,
    ) -> str:
        """Run a finished instance again as a new instance, from one of its activities.

        The new instance keeps the source's history up to the activity scheduled as
        ``event_id``: results recorded before it are reused, that activity and every later
        step run again. ``event_id`` 0 reruns the whole workflow.

        Args:
            source_instance_id: the finished source instance.
            event_id: the ``event_id`` of the source's ``TaskScheduled`` event to rerun from.
            new_instance_id: the new instance's id (default: a new UUID).
            input: with ``overwrite_input``, the new input (JSON text) of the rerun activity
                (for ``event_id`` 0: of the workflow).
            overwrite_input: replace the input with ``input``; else keep it.

        Returns:
            the new instance's id.

        Raises:
            WorkflowNotFoundError: no such source instance.
            WorkflowStateError: the source has not finished.
            InvalidInputError: a bad id or input, no activity was scheduled as ``event_id``,
                or the cut would leave a child workflow without its result.
        """
        source = self._require(source_instance_id)
        if not source.status.is_terminal:
            status = WorkflowStatus.from_orchestration_status(source.status).name
            raise WorkflowStateError(
                f"workflow {source_instance_id!r} is {status}; only a finished workflow can "
                "be rerun (wait for it, or terminate it first)"
            )
        new_id = (
            validate_instance_id(new_instance_id)
            if new_instance_id is not None
            else ids.new_instance_id()
        )
        new_input = self._payload(input, "input") if overwrite_input else None
        self._store.create_instance(
            rerun_instance(self._store, source, event_id, new_id, new_input, overwrite_input)
        )
        return new_id

    # ---- reading ---------------------------------------------------------------------
    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None if there is no such instance."""
        return self._store.get_instance(validate_instance_id(instance_id))

    def wait_for_start(
        self,
        instance_id: str,
        *,
        timeout_s: float | None = None,
        check: Callable[[], None] | None = None,
    ) -> InstanceRecord | None:
        """Wait until the instance has started (is no longer PENDING); return its record, or
        None if there is no such instance.

        Args:
            timeout_s: how long to wait (None: without limit; 0 or less: look once).
            check: called between looks; whatever it raises ends the wait (a caller that
                went away, say).

        Raises:
            TimeoutError: the time ran out first.
        """
        return self._wait(
            instance_id,
            lambda r: r.status is not OrchestrationStatus.PENDING,
            "start",
            timeout_s,
            check,
        )

    def wait_for_completion(
        self,
        instance_id: str,
        *,
        timeout_s: float | None = None,
        check: Callable[[], None] | None = None,
    ) -> InstanceRecord | None:
        """Wait until the instance has finished (completed, failed or terminated); return its
        record, or None if there is no such instance.

        Args:
            timeout_s: how long to wait (None: without limit; 0 or less: look once).
            check: called between looks; whatever it raises ends the wait.

        Raises:
            TimeoutError: the time ran out first.
        """
        return self._wait(instance_id, lambda r: r.status.is_terminal, "finish", timeout_s, check)

    def _wait(
        self,
        instance_id: str,
        done: Callable[[InstanceRecord], bool],
        what: str,
        timeout_s: float | None,
        check: Callable[[], None] | None,
    ) -> InstanceRecord | None:
        iid = validate_instance_id(instance_id)
        return wait_for(self._store, iid, done, what=what, timeout_s=timeout_s, check=check)

    def list_instances(
        self,
        *,
        statuses: Sequence[OrchestrationStatus] = (),
        name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        id_prefix: str | None = None,
    ) -> InstancePage:
        """A page of instances, newest first, filtered by status, name and creation time.

        Args:
            statuses: only these, as the Dapr API reports them (RUNNING also matches
                CONTINUED_AS_NEW, TERMINATED also CANCELED); any if empty.
            name: only this workflow.
            created_from: created at or after.
            created_to: created before.
            page_size: at most this many (1 or more).
            continuation_token: where the previous page ended.
            id_prefix: only instances whose id starts with this.

        Raises:
            InvalidInputError: a page size below 1, a name no workflow can have, or a token
                that is not one a page returned.
        """
        if page_size < 1:
            raise InvalidInputError("page_size must be >= 1")
        if name is not None:
            validate_name(name, "workflow name filter")
        if continuation_token is not None:
            validate_token(continuation_token, "continuation token")
        return self._store.list_instances(
            InstanceQuery(
                statuses=matching(statuses),
                name=name,
                created_from=created_from,
                created_to=created_to,
                limit=page_size,
                cursor=continuation_token,
                id_prefix=id_prefix or None,
            )
        )

    def count_by_name(self) -> dict[str, dict[WorkflowStatus, int]] | None:
        """How many instances each workflow name has in each status (None if the store
        cannot count)."""
        return count_by_name(self._store)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current run's history events, oldest first.

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        return self._store.get_history(self._require(instance_id).instance_id)

    # ---- signalling ------------------------------------------------------------------
    def raise_event(self, instance_id: str, name: str, *, data: str | None = None) -> None:
        """Send an event to an instance, finished or not; it is durable when this returns.

        Args:
            data: the event's payload as JSON text (None or empty: none).

        Raises:
            WorkflowNotFoundError: no such instance.
            InvalidInputError: a bad id or name, or data that is not JSON.
        """
        iid = validate_instance_id(instance_id)
        event = EventRaised(
            timestamp=_now(),
            name=validate_name(name, "event name"),
            input=self._payload(data, "event data"),
        )
        self._store.send_message(NewMessage(iid, event))

    def terminate(
        self, instance_id: str, *, output: str | None = None, recursive: bool = True
    ) -> None:
        """Terminate an instance (and, with ``recursive``, its running children). Terminating
        a finished instance does nothing.

        Args:
            output: the instance's output (JSON text) once terminated.

        Raises:
            WorkflowNotFoundError: no such instance.
            InvalidInputError: a bad id, or output that is not JSON.
        """
        text = self._payload(output, "output")
        self._signal(
            instance_id,
            ExecutionTerminated(timestamp=_now(), input=text, recurse=recursive),
            done=lambda r: r.status.is_terminal,
        )

    def suspend(self, instance_id: str, *, reason: str | None = None) -> None:
        """Suspend an instance; events sent meanwhile are kept and delivered on resume.
        Suspending a finished instance does nothing.

        Args:
            reason: why, as plain text (kept in the history event, as durabletask does).

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._signal(
            instance_id,
            ExecutionSuspended(timestamp=_now(), input=reason or None),
            shown=OrchestrationStatus.SUSPENDED,
            done=lambda r: r.status is OrchestrationStatus.SUSPENDED or r.status.is_terminal,
        )

    def resume(self, instance_id: str, *, reason: str | None = None) -> None:
        """Resume a suspended instance. Resuming a finished instance does nothing.

        Args:
            reason: why, as plain text (kept in the history event).

        Raises:
            WorkflowNotFoundError: no such instance.
        """
        self._signal(
            instance_id,
            ExecutionResumed(timestamp=_now(), input=reason or None),
            shown=OrchestrationStatus.RUNNING,
            done=lambda r: r.status is not OrchestrationStatus.SUSPENDED,
        )

    def _signal(
        self,
        instance_id: str,
        event: HistoryEvent,
        *,
        done: Callable[[InstanceRecord], bool],
        shown: OrchestrationStatus | None = None,
    ) -> None:
        """Send a control event (terminate, suspend, resume) unless the instance finished,
        and return once the instance's state shows it (``done``), as daprd's calls do.

        An instance nobody holds shows a suspend or resume at once (the store changes its
        status with the message). One a worker holds, and any one that a runtime of this
        process may take, is waited for, at most :attr:`control_wait_s` seconds: its worker
        takes the message within a turn. (A termination takes no workflow code, so a runtime
        here gives up any turn it sent to a remote worker for the instance: that worker may
        be gone. A suspend or resume gives up only a turn no remote worker has received yet,
        and is recorded without one while none is connected.) Otherwise the message waits for
        the next worker that claims the instance.
        """
        record = self._require(instance_id)
        if record.status.is_terminal:
            return
        iid = record.instance_id
        leased = self._store.signal_instance(NewMessage(iid, event), shown_status=shown)
        runtimes = local_starts.starters(self._store.url)
        for runtime in runtimes:
            if isinstance(event, ExecutionTerminated):
                runtime.abandon_remote_turn(iid)
            else:
                runtime.withdraw_remote_turn(iid)
        if not (leased or runtimes) or self.control_wait_s <= 0:
            return

        def give_up_again() -> None:
            # A turn claimed just before the message came (with the messages before it) may
            # go out to a remote worker only after the first try: give it up once it does.
            for runtime in runtimes:
                if isinstance(event, ExecutionTerminated):
                    runtime.abandon_remote_turn(iid)
                else:
                    runtime.withdraw_remote_turn(iid)

        try:
            wait_for(
                self._store,
                iid,
                lambda r: done(r) or r.version > record.version + 1,
                what="take the request",
                timeout_s=self.control_wait_s,
                check=give_up_again if runtimes else None,
            )
        except TimeoutError:
            logger.info(
                "workflow %r has not taken the %s within %.3g s; it will when a worker runs it",
                iid,
                type(event).__name__,
                self.control_wait_s,
            )

    # ---- purging ---------------------------------------------------------------------
    def purge(self, instance_id: str, *, recursive: bool = True) -> int:
        """Delete a finished instance's state (and its children's, with ``recursive``).

        Returns:
            how many instances were deleted (0 if there was none).

        Raises:
            WorkflowStateError: the instance or a child has not finished.
        """
        return self._store.purge_instance(validate_instance_id(instance_id), recursive=recursive)

    def purge_matching(
        self,
        *,
        statuses: Sequence[OrchestrationStatus] = (),
        name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        finished_before: datetime | None = None,
        recursive: bool = True,
        dry_run: bool = False,
    ) -> PurgeOutcome:
        """Delete the finished instances that match a filter (and their children, with
        ``recursive``), in short batches; unfinished ones, and instances with an unfinished
        child, are left alone.

        Args:
            statuses: only these, as the Dapr API reports them (any finished one if empty;
                none if every one given is unfinished).
            name: only this workflow.
            created_from: created at or after.
            created_to: created before.
            finished_before: finished before.
            dry_run: delete nothing; count the matching instances.
        """
        wanted = matching(statuses)
        finished = tuple(s for s in wanted if s.is_terminal)
        if wanted and not finished:
            return PurgeOutcome(0, True)  # only unfinished statuses asked for
        which = PurgeFilter(
            statuses=finished,
            name=validate_name(name, "workflow name") if name is not None else None,
            created_from=created_from,
            created_to=created_to,
            finished_before=finished_before,
        )
        return purge_by_filter(self._store, which, recursive=recursive, dry_run=dry_run)

    def _payload(self, text: str | None, what: str) -> str | None:
        if self._check_payloads:
            return check_json(text, what)
        return text or None

    def _require(self, instance_id: str) -> InstanceRecord:
        record = self._store.get_instance(validate_instance_id(instance_id))
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow instance with id {instance_id!r}; "
                "check the id (list them with `treadle workflow list`)"
            )
        return record


def _now() -> datetime:
    return datetime.now(timezone.utc)
