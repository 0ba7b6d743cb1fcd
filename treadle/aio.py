"""The asyncio workflow client: ``from treadle.aio import DaprWorkflowClient``.

Every method of :class:`treadle.WorkflowClient` as a coroutine, on the same stores, with the
same arguments, results and errors (the names of ``dapr.ext.workflow.aio``). The store calls
run in worker threads of the client's own, so waits for many instances at once neither block
the event loop nor use up the loop's default executor.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from treadle import client as sync
from treadle.client import WorkflowPage, WorkflowState, WorkflowStatus
from treadle.client.schedules import ScheduleDescription
from treadle.core.history import HistoryEvent
from treadle.store import Store
from treadle.store.queues import Queue, QueueLimits

__all__ = ["DaprWorkflowClient", "WorkflowClient"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_KEEP: Any = object()


class DaprWorkflowClient:
    """Start, inspect, signal and manage workflow instances from asyncio code.

    Args:
        store: a store URL or object, as for :class:`treadle.WorkflowClient`.
        max_threads: store calls (waits included) running at once for this client.
        host, port, logger_options: accepted for Dapr compatibility and ignored (treadle
            talks to the store; it logs through the ``treadle`` loggers).
        app_id: the app of the workflows it starts, as for :class:`treadle.WorkflowClient`.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        host: str | None = None,
        port: str | int | None = None,
        logger_options: Any = None,
        max_threads: int = 64,
        app_id: str | None = None,
        **dapr_options: Any,
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be >= 1")
        self._sync = sync.WorkflowClient(store, host=host, port=port, app_id=app_id, **dapr_options)
        self._threads = ThreadPoolExecutor(max_threads, thread_name_prefix="treadle-aio")

    @property
    def sync_client(self) -> sync.WorkflowClient:
        """The blocking client underneath (same store)."""
        return self._sync

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._threads, call)

    async def close(self) -> None:
        """Release the store's connections (if this client opened the store) and threads."""
        await self._run(self._sync.close)
        self._threads.shutdown(wait=False)

    async def __aenter__(self) -> DaprWorkflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schedule_new_workflow(
        self,
        workflow: str | Callable[..., Any],
        *,
        input: Any = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        reuse_id_policy: Any = None,
        timeout: timedelta | None = None,
    ) -> str:
        """Start a workflow instance; return its id (see
        :meth:`treadle.WorkflowClient.schedule_new_workflow`)."""
        return await self._run(
            functools.partial(
                self._sync.schedule_new_workflow,
                workflow,
                input=input,
                instance_id=instance_id,
                start_at=start_at,
                reuse_id_policy=reuse_id_policy,
                timeout=timeout,
            )
        )

    async def rerun_workflow_from_event(
        self,
        instance_id: str,
        event_id: int,
        *,
        new_instance_id: str | None = None,
        input: Any = _KEEP,
    ) -> str:
        """Run a finished instance again as a new instance, from one of its activities."""
        options: dict[str, Any] = {} if input is _KEEP else {"input": input}
        return await self._run(
            functools.partial(
                self._sync.rerun_workflow_from_event,
                instance_id,
                event_id,
                new_instance_id=new_instance_id,
                **options,
            )
        )

    async def get_workflow_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> WorkflowState | None:
        """The instance's state, or None if there is no such instance."""
        return await self._run(
            functools.partial(
                self._sync.get_workflow_state, instance_id, fetch_payloads=fetch_payloads
            )
        )

    async def wait_for_workflow_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has started (0: no time limit).

        Raises:
            TimeoutError: the time ran out first.
        """
        return await self._run(
            functools.partial(
                self._sync.wait_for_workflow_start,
                instance_id,
                fetch_payloads=fetch_payloads,
                timeout_in_seconds=timeout_in_seconds,
            )
        )

    async def wait_for_workflow_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout_in_seconds: float = 0
    ) -> WorkflowState | None:
        """Wait until the instance has finished (0: no time limit).

        Raises:
            TimeoutError: the time ran out first.
        """
        return await self._run(
            functools.partial(
                self._sync.wait_for_workflow_completion,
                instance_id,
                fetch_payloads=fetch_payloads,
                timeout_in_seconds=timeout_in_seconds,
            )
        )

    async def list_workflows(
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
        return await self._run(
            functools.partial(
                self._sync.list_workflows,
                status=status,
                name=name,
                created_from=created_from,
                created_to=created_to,
                page_size=page_size,
                continuation_token=continuation_token,
            )
        )

    async def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]:
        """The history events of the instance's current run, oldest first."""
        return await self._run(self._sync.get_workflow_history, instance_id)

    async def export_workflow_history(self, instance_id: str) -> str:
        """The instance's current run as a history file (see
        :meth:`WorkflowClient.export_workflow_history`)."""
        return await self._run(self._sync.export_workflow_history, instance_id)

    async def raise_workflow_event(
        self, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        """Send an event to an instance; it is durable when this returns."""
        await self._run(
            functools.partial(self._sync.raise_workflow_event, instance_id, event_name, data=data)
        )

    async def terminate_workflow(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        """Terminate an instance (and, with ``recursive``, its running children)."""
        await self._run(
            functools.partial(
                self._sync.terminate_workflow, instance_id, output=output, recursive=recursive
            )
        )

    async def pause_workflow(self, instance_id: str) -> None:
        """Suspend an instance; events raised meanwhile wait for resume."""
        await self._run(self._sync.pause_workflow, instance_id)

    suspend_workflow = pause_workflow

    async def resume_workflow(self, instance_id: str) -> None:
        """Resume a suspended instance."""
        await self._run(self._sync.resume_workflow, instance_id)

    async def purge_workflow(self, instance_id: str, recursive: bool = True) -> int:
        """Delete a finished instance's state (and its children's); return how many."""
        return await self._run(
            functools.partial(self._sync.purge_workflow, instance_id, recursive=recursive)
        )

    async def purge_workflows(
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
        """Delete the finished instances matching the filters (see
        :meth:`treadle.WorkflowClient.purge_workflows`); return how many."""
        return await self._run(
            functools.partial(
                self._sync.purge_workflows,
                status=status,
                name=name,
                created_from=created_from,
                created_to=created_to,
                finished_before=finished_before,
                recursive=recursive,
                dry_run=dry_run,
            )
        )

    async def create_schedule(
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
        """Create a durable schedule (see :meth:`treadle.WorkflowClient.create_schedule`)."""
        return await self._run(
            functools.partial(
                self._sync.create_schedule,
                schedule_id,
                workflow,
                cron=cron,
                every=every,
                input=input,
                start_at=start_at,
                end_at=end_at,
                overlap=overlap,
                catchup_window=catchup_window,
                time_zone=time_zone,
                replace=replace,
            )
        )

    async def get_schedule(self, schedule_id: str) -> ScheduleDescription | None:
        """The schedule, or None."""
        return await self._run(self._sync.get_schedule, schedule_id)

    async def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by id."""
        return await self._run(self._sync.list_schedules)

    async def pause_schedule(self, schedule_id: str) -> None:
        """Stop firing a schedule until it is resumed."""
        await self._run(self._sync.pause_schedule, schedule_id)

    async def resume_schedule(self, schedule_id: str) -> None:
        """Fire a paused schedule again, from its next slot after now."""
        await self._run(self._sync.resume_schedule, schedule_id)

    async def trigger_schedule(self, schedule_id: str) -> str:
        """Start the schedule's workflow now; return the instance id."""
        return await self._run(self._sync.trigger_schedule, schedule_id)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule."""
        await self._run(self._sync.delete_schedule, schedule_id)

    async def list_queue_limits(self) -> list[QueueLimits]:
        """The limits of every queue, as the store keeps them, by name."""
        return await self._run(self._sync.list_queue_limits)

    async def set_queue_limits(self, queue: Queue) -> QueueLimits | None:
        """Set and pin a queue's limits for every worker (see
        :meth:`treadle.WorkflowClient.set_queue_limits`)."""
        return await self._run(self._sync.set_queue_limits, queue)

    async def release_queue_limits(self, name: str) -> bool:
        """Unpin a queue's limits (the next registration replaces them)."""
        return await self._run(self._sync.release_queue_limits, name)


WorkflowClient = DaprWorkflowClient
"""The same class under treadle's own name (``treadle.aio.WorkflowClient``)."""
