"""A bounded fan-out: run many tasks with at most N in flight, deterministically.

::

    def crawl(ctx, urls):
        pages = yield from wf.when_all_bounded(
            (functools.partial(ctx.call_activity, fetch, input=u) for u in urls),
            max_concurrent=10,
        )
        # or, for one activity over many inputs:
        pages = yield from ctx.map_activity(fetch, urls, max_concurrent=10)

It is plain workflow code: it starts the first ``max_concurrent`` tasks, then waits for any to
finish (``when_any``) and starts one more for each that did, so on replay the same history
gives the same calls in the same order. Results come back in the order of the calls. The
first failure raises (as ``when_all``); tasks still in flight then are abandoned, their
results dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

from treadle.core.tasks import Task, when_any

__all__ = ["when_all_bounded"]

T = TypeVar("T")


def when_all_bounded(
    calls: Iterable[Callable[[], Task[T]]], *, max_concurrent: int
) -> Generator[Task[Any], Any, list[T]]:
    """Run the tasks ``calls`` start, at most ``max_concurrent`` at once; use with ``yield
    from``, which gives their results in the order of ``calls``.

    Args:
        calls: zero-argument callables, each starting one task (``lambda:
            ctx.call_activity(...)``, ``functools.partial(ctx.call_child_workflow, ...)``);
            called lazily, as room frees up.
        max_concurrent: the most tasks in flight at once (1 or more).

    Raises:
        ValueError: ``max_concurrent`` is below 1.
        TaskFailedError: a task failed (the first to, in history order).
    """
    if not isinstance(max_concurrent, int) or max_concurrent < 1:
        raise ValueError(
            f"max_concurrent must be a whole number of 1 or more, not {max_concurrent!r}"
        )
    pending = iter(calls)
    started: list[Task[T]] = []
    running: list[Task[T]] = []
    exhausted = False
    while True:
        while not exhausted and len(running) < max_concurrent:
            call = next(pending, None)
            if call is None:
                exhausted = True
                break
            task = call()
            started.append(task)
            running.append(task)
        if not running:
            return [t.get_result() for t in started]
        yield when_any(running)
        # every task finished by now frees its room (several may finish in one step)
        for task in [t for t in running if t.is_complete]:
            running.remove(task)
            if task.is_failed:
                raise task.get_exception()
