"""Sagas: undo the steps of a workflow that succeeded when a later one fails.

A saga registers a compensation (an activity call that undoes a step) as each step succeeds,
and on failure runs them newest first, each a durable activity call like any other::

    def trip(ctx: wf.WorkflowContext, order):
        saga = wf.Saga(ctx)
        try:
            flight = yield ctx.call_activity(book_flight, input=order)
            saga.add_compensation(cancel_flight, input=flight)
            hotel = yield ctx.call_activity(book_hotel, input=order)
            saga.add_compensation(cancel_hotel, input=hotel)
        except wf.TaskFailedError:
            yield from saga.compensate()
            raise

The saga is plain workflow state: it is rebuilt by replay like the rest of the code, so a
worker that takes the instance over mid-compensation goes on where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from treadle.core.context import WorkflowContext
from treadle.core.records import record_class
from treadle.core.retry import RetryPolicy
from treadle.core.tasks import Task
from treadle.errors import CompensationError, TaskFailedError

__all__ = ["Saga"]


@record_class
class _Compensation:
    activity: str | Callable[..., Any]
    input: Any
    retry_policy: RetryPolicy | None
    app_id: str | None


class Saga:
    """Compensations registered as a workflow's steps succeed, run in reverse on failure.

    Args:
        ctx: the workflow's context.
        retry_policy: the retry policy of every compensation that gives none of its own
            (compensations should be retried: they are what leaves the world consistent).
        continue_on_error: when a compensation fails (after its retries), go on with the
            older ones and raise :class:`~treadle.errors.CompensationError` at the end (the
            default); False: raise it at once, leaving the older ones registered.
    """

    __slots__ = ("_continue_on_error", "_ctx", "_retry_policy", "_steps")

    def __init__(
        self,
        ctx: WorkflowContext,
        *,
        retry_policy: RetryPolicy | None = None,
        continue_on_error: bool = True,
    ) -> None:
        self._ctx = ctx
        self._retry_policy = retry_policy
        self._continue_on_error = continue_on_error
        self._steps: list[_Compensation] = []

    def __len__(self) -> int:
        """How many compensations are registered and not run yet."""
        return len(self._steps)

    def add_compensation(
        self,
        activity: str | Callable[..., Any],
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        app_id: str | None = None,
    ) -> None:
        """Register the activity call that undoes the step that just succeeded.

        Args:
            activity: the compensating activity function, or its registered name.
            input: its JSON-serializable input (what the step returned, typically).
            retry_policy: its retry policy (default: the saga's).
            app_id: the app whose workers run it (default: the workflow's own app).
        """
        self._steps.append(_Compensation(activity, input, retry_policy, app_id))

    def compensate(self) -> Generator[Task[Any], Any, list[Any]]:
        """Run the registered compensations, newest first, one after another; use it with
        ``yield from saga.compensate()``. Each runs once: they are forgotten as they run.

        Returns:
            the compensations' results, in the order they ran.

        Raises:
            CompensationError: a compensation failed (after its retries); its ``failures``
                holds each :class:`~treadle.errors.TaskFailedError`.
        """
        results: list[Any] = []
        failures: list[TaskFailedError] = []
        while self._steps:
            step = self._steps.pop()
            try:
                results.append(
                    (
                        yield self._ctx.call_activity(
                            step.activity,
                            input=step.input,
                            retry_policy=step.retry_policy or self._retry_policy,
                            app_id=step.app_id,
                        )
                    )
                )
            except TaskFailedError as exc:
                failures.append(exc)
                if not self._continue_on_error:
                    break
        if failures:
            raise CompensationError(failures)
        return results
