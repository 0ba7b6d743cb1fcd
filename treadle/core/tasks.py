"""Tasks: what a workflow yields, and their composites ``when_all`` / ``when_any``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from treadle.errors import FailureDetails, TaskFailedError

T = TypeVar("T")


class Task(Generic[T]):
    """Something a workflow waits for by yielding it: an activity, timer, event or composite."""

    __slots__ = ("_exception", "_is_complete", "_parents", "_result")

    def __init__(self) -> None:
        self._is_complete = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._parents: list[CompositeTask[Any]] = []

    @property
    def is_complete(self) -> bool:
        """Whether the task has a result or an error."""
        return self._is_complete

    @property
    def is_failed(self) -> bool:
        """Whether the task completed with an error."""
        return self._exception is not None

    def get_result(self) -> T:
        """The task's result.

        Raises:
            ValueError: the task has not completed.
            BaseException: the task's error, if it failed.
        """
        if not self._is_complete:
            raise ValueError("the task has not completed yet")
        if self._exception is not None:
            raise self._exception
        result: T = self._result
        return result

    def get_exception(self) -> BaseException:
        """The task's error.

        Raises:
            ValueError: the task did not fail.
        """
        if self._exception is None:
            raise ValueError("the task did not fail")
        return self._exception

    def _settle(self) -> None:
        self._is_complete = True
        for parent in self._parents:
            parent.on_child_completed(self)


class CompletableTask(Task[T]):
    """A task completed from outside: by a history event."""

    __slots__ = ()

    def complete(self, result: T) -> None:
        """Complete the task with ``result`` (ignored if it already completed)."""
        if self._is_complete:
            return
        self._result = result
        self._settle()

    def fail(self, message: str, details: FailureDetails) -> None:
        """Fail the task with a :class:`TaskFailedError` (ignored if it already completed)."""
        self.fail_with(TaskFailedError(message, details))

    def fail_with(self, exception: BaseException) -> None:
        """Fail the task with ``exception`` (ignored if it already completed)."""
        if self._is_complete:
            return
        self._exception = exception
        self._settle()


class CompositeTask(Task[T]):
    """A task made of other tasks."""

    __slots__ = ("_completed_count", "_tasks")

    def __init__(self, tasks: Iterable[Task[Any]]) -> None:
        super().__init__()
        self._tasks = list(tasks)
        self._completed_count = 0
        for task in self._tasks:
            if not isinstance(task, Task):
                raise TypeError(
                    f"when_all/when_any take tasks (from ctx.call_activity and the like), "
                    f"got {type(task).__name__}"
                )
            task._parents.append(self)
        for task in self._tasks:
            if task.is_complete and not self._is_complete:
                self.on_child_completed(task)

    @property
    def children(self) -> list[Task[Any]]:
        """The composed tasks, in the order given."""
        return list(self._tasks)

    def on_child_completed(self, task: Task[Any]) -> None:
        """Called when one of the composed tasks completes."""
        raise NotImplementedError


class WhenAllTask(CompositeTask[list[Any]]):
    """Completes with the list of results when every task has completed; fails on the first
    failure."""

    __slots__ = ()

    def __init__(self, tasks: Iterable[Task[Any]]) -> None:
        super().__init__(tasks)
        if not self._tasks and not self._is_complete:
            self._result = []
            self._settle()

    def on_child_completed(self, task: Task[Any]) -> None:
        """Count the completion; fail at once if the task failed."""
        if self._is_complete:
            return
        self._completed_count += 1
        if task.is_failed:
            self._exception = task.get_exception()
            self._settle()
        elif self._completed_count == len(self._tasks):
            self._result = [t.get_result() for t in self._tasks]
            self._settle()


class WhenAnyTask(CompositeTask[Task[Any]]):
    """Completes with the first task to complete (the winning task itself)."""

    __slots__ = ()

    def __init__(self, tasks: Iterable[Task[Any]]) -> None:
        super().__init__(tasks)
        if not self._tasks:
            raise ValueError("when_any needs at least one task")

    def on_child_completed(self, task: Task[Any]) -> None:
        """The first completion wins."""
        if self._is_complete:
            return
        self._completed_count += 1
        self._result = task
        self._settle()


def when_all(tasks: Iterable[Task[T]]) -> WhenAllTask:
    """A task that completes when all ``tasks`` have, with their results in order.

    It fails as soon as any task fails, with that task's error.
    """
    return WhenAllTask(tasks)


def when_any(tasks: Iterable[Task[Any]]) -> WhenAnyTask:
    """A task that completes when any of ``tasks`` does; its result is the winning task."""
    return WhenAnyTask(tasks)
