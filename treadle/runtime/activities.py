"""Running activities: sync ones in a bounded thread pool, ``async def`` ones on an event loop.

Threads: :meth:`ActivityExecutor.submit` is called by the thread that holds the engine lock
(and by the event loop's thread, for a sync step that an async result scheduled). The
activity threads run sync activities, one event-loop thread runs the async ones; each
reports an outcome through ``done`` on its own thread, which may hand back the next step for
that thread to run.

State: the queue of items waiting for a thread, the threads and how many are idle (under the
executor's own lock), the event loop, whether each activity name is ``async def``, and the
activities running now (each thread adds and removes its own with one dict operation,
without the lock; :meth:`ActivityExecutor.cancel` looks at a copy).
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import field
from typing import TYPE_CHECKING, Any

from treadle.clock import Clock, SystemClock, utcnow
from treadle.core import codec
from treadle.core.context import WorkflowActivityContext
from treadle.core.history import HistoryEvent, TaskCompleted, TaskFailed
from treadle.core.inputs import call_with_input
from treadle.core.records import record_class
from treadle.core.replay import failure_from_exception
from treadle.errors import FailureDetails, RegistrationError
from treadle.store.base import ActivityWorkItem

if TYPE_CHECKING:
    import asyncio

    from treadle.runtime.tracing import Tracing

logger = logging.getLogger(__name__)

Done = Callable[[ActivityWorkItem, HistoryEvent], "ActivityWorkItem | None"]
Observe = Callable[[ActivityWorkItem, HistoryEvent, float], None]


class ActivityExecutor:
    """Runs activity work items and reports each outcome to ``done``.

    Args:
        activities: registered activity functions by name.
        max_concurrent: how many activities run at once (threads, and async tasks).
        done: called from a worker thread with the item and its TaskCompleted/TaskFailed.
        is_current: asked just before an item starts; an item it refuses is dropped, not run
            (its lease ran out while it waited).
        heartbeat: records a heartbeat of a running item (on its thread) with its details as
            JSON text; False if the item is no longer held here (it is then told to stop).
        clock: the time of each result (its event's timestamp).
        observe: told of each attempt's outcome and how many seconds it ran, if given.
        tracing: makes a span of each attempt, if given.
    """

    def __init__(
        self,
        activities: dict[str, Callable[..., Any]],
        max_concurrent: int,
        done: Done,
        *,
        is_current: Callable[[ActivityWorkItem], bool] | None = None,
        heartbeat: Callable[[ActivityWorkItem, str | None], bool] | None = None,
        clock: Clock | None = None,
        observe: Observe | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._observe = observe
        self._tracing = tracing
        self._clock = clock or SystemClock()
        self._activities = activities
        self._done = done
        self._is_current = is_current or (lambda item: True)
        self._heartbeat = heartbeat
        self._max_threads = max_concurrent
        # A plain queue and long-lived threads: cheaper per item than ThreadPoolExecutor,
        # which builds a Future and takes a semaphore on every submit.
        self._queue: queue.SimpleQueue[ActivityWorkItem | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._async_slots: asyncio.Semaphore | None = None
        self._max_concurrent = max_concurrent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._async_names: dict[str, tuple[Callable[..., Any], bool]] = {}
        # the activities running now, by activity row id: their stop flags (see cancel)
        self._running: dict[int, _Running] = {}

    def submit(self, item: ActivityWorkItem) -> None:
        """Start running ``item`` (returns at once)."""
        fn = self._activities.get(item.name)
        if fn is not None and self._is_async(item.name, fn):
            import asyncio  # (only with async activities: most workers never load it)

            loop = self._event_loop()
            asyncio.run_coroutine_threadsafe(self._run_async(fn, item), loop)
            return
        self._queue.put(item)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._thread_main,
                    name=f"treadle-activity-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def runs_on_thread(self, item: ActivityWorkItem) -> bool:
        """Whether ``item`` is a registered sync activity (run on one of the threads)."""
        fn = self._activities.get(item.name)
        if fn is None:
            return False
        known = self._async_names.get(item.name)  # (_is_async's answer, if it is known)
        if known is not None and known[0] is fn:
            return not known[1]
        return not self._is_async(item.name, fn)

    def _is_async(self, name: str, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` (registered as ``name``) is an ``async def`` (asked once a name)."""
        known = self._async_names.get(name)
        if known is None or known[0] is not fn:
            known = self._async_names[name] = (fn, inspect.iscoroutinefunction(fn))
        return known[1]

    def _thread_main(self) -> None:
        while True:
            item: ActivityWorkItem | None = self._queue.get()
            if item is None:
                return
            while item is not None:  # ``done`` may hand back the next step to run here
                running = item
                try:
                    item = self._run_sync(self._activities.get(running.name), running)
                except BaseException:  # (not from user code: _run_sync catches all of that)
                    logger.exception("activity thread error running %r; going on", running.name)
                    item = None
            with self._lock:
                self._idle += 1

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        import asyncio

        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run_until_stopped,
                    args=(loop,),
                    name="treadle-async-activities",
                    daemon=True,
                )
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def cancel(
        self,
        instance_id: str,
        task_ids: Collection[int] | None = None,
        *,
        item: ActivityWorkItem | None = None,
    ) -> None:
        """Tell the instance's running activities (those of ``task_ids`` only, or the one
        running ``item``, if given) to stop: their context's ``is_cancelled`` turns true, and
        an ``async def`` one is cancelled at its next ``await`` (any thread). Their results
        are dropped."""
        with self._lock:
            hit = [
                r
                for r in list(self._running.values())  # (one C call: runs come and go)
                if r.item.instance_id == instance_id
                and (task_ids is None or r.item.task_id in task_ids)
                and (item is None or r.item is item)
            ]
            for running in hit:
                running.cancelled.set()
                task = running.task
                if task is not None and self._loop is not None:
                    self._loop.call_soon_threadsafe(task.cancel)
        for running in hit:
            logger.info(
                "told activity %r (step %d) of %s to stop",
                running.item.name,
                running.item.task_id,
                instance_id,
            )

    def _context(self, item: ActivityWorkItem, running: _Running) -> WorkflowActivityContext:
        return WorkflowActivityContext(
            workflow_id=item.instance_id,
            task_id=item.task_id,
            task_execution_id=item.task_execution_id,
            name=item.name,
            propagated=item.propagated,
            heartbeat_details=None
            if item.heartbeat_details is None
            else codec.decode(item.heartbeat_details),
            cancelled=running.cancelled.is_set,
            record_heartbeat=lambda details: self._beat(running, details),
        )

    def _beat(self, running: _Running, details: Any) -> None:
        """An activity's ``ctx.heartbeat(details)`` (on its thread)."""
        if self._heartbeat is None or running.item.heartbeat_s is None:
            return
        if not self._heartbeat(running.item, codec.encode(details)):
            running.cancelled.set()

    def _started(self, item: ActivityWorkItem) -> _Running:
        running = _Running(item)
        self._running[item.id] = running  # (one dict operation: no lock, see the module)
        return running

    def _ended(self, item: ActivityWorkItem) -> None:
        self._running.pop(item.id, None)

    def _run_sync(
        self, fn: Callable[..., Any] | None, item: ActivityWorkItem
    ) -> ActivityWorkItem | None:
        if not self._is_current(item):
            return None
        running = _Running(item)
        self._running[item.id] = running  # (as _started and _ended do, inline: every step)
        began = time.perf_counter() if self._observe is not None else 0.0
        attempt = self._tracing.activity_started(item) if self._tracing is not None else None
        try:
            if fn is None:
                raise _unregistered(item.name)
            out = call_with_input(fn, self._context(item, running), item.input)
            event: HistoryEvent = _completed(item, codec.encode(out), self._clock)
        except _ACTIVITY_ERRORS as exc:
            event = _failed(item, exc, self._clock)
        finally:
            self._running.pop(item.id, None)
        if attempt is not None:
            attempt.finished(event)
        if self._observe is not None:
            self._observe(item, event, time.perf_counter() - began)
        return self._report(item, event)

    async def _run_async(self, fn: Callable[..., Any], item: ActivityWorkItem) -> None:
        import asyncio

        if self._async_slots is None:
            self._async_slots = asyncio.Semaphore(self._max_concurrent)
        async with self._async_slots:
            await self._run_async_now(fn, item)

    async def _run_async_now(self, fn: Callable[..., Any], item: ActivityWorkItem) -> None:
        import asyncio

        if not self._is_current(item):
            return
        running = self._started(item)
        began = time.perf_counter() if self._observe is not None else 0.0
        attempt = self._tracing.activity_started(item) if self._tracing is not None else None
        try:
            # a task of its own, which cancel() can cancel without cancelling this one
            task = asyncio.ensure_future(
                _guarded(call_with_input(fn, self._context(item, running), item.input))
            )
            with self._lock:
                running.task = task
            if running.cancelled.is_set():
                task.cancel()
            out, raised = await task
            if raised is not None:
                raise raised
            event: HistoryEvent = _completed(item, codec.encode(out), self._clock)
        except asyncio.CancelledError as exc:
            if not running.cancelled.is_set() and _cancelling():
                raise  # not ours, nor the activity's: this task is being cancelled
            # ours (dropped: its task was given up), or raised by the activity's own code,
            # which fails it like any other exception
            event = _failed(item, exc, self._clock)
        except _ACTIVITY_ERRORS as exc:
            event = _failed(item, exc, self._clock)
        finally:
            self._ended(item)
        if attempt is not None:
            attempt.finished(event)
        if self._observe is not None:
            self._observe(item, event, time.perf_counter() - began)
        following = self._report(item, event)
        if following is not None:  # a sync step scheduled by this result: to the threads
            self.submit(following)

    def _report(self, item: ActivityWorkItem, event: HistoryEvent) -> ActivityWorkItem | None:
        try:
            return self._done(item, event)
        except BaseException:  # (the thread must live on: its queue would wait for ever)
            logger.exception("could not report the result of activity %r", item.name)
            return None

    def shutdown(self, wait: bool) -> None:
        """Stop the threads; with ``wait``, let running activities finish first."""
        while True:  # drop what has not started
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join(timeout=30)
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._loop_thread is not None and wait:
                    self._loop_thread.join(timeout=5)
                self._loop = None


# What an activity raising fails it with: anything. SystemExit, KeyboardInterrupt,
# GeneratorExit, a bare BaseException, asyncio's CancelledError: raised by an activity's code
# on a worker thread, not by Ctrl-C (which Python delivers to the main thread only) nor by a
# shutdown (which stops the event loop without cancelling its tasks). Let through, they would
# end the thread, and the activities queued for it, and the instance, would wait for ever.
_ACTIVITY_ERRORS = (BaseException,)


class _Flag:
    """A flag set from any thread and read by the activity (a ``threading.Event`` without
    ``wait``, which nothing here needs: cheaper to make for every activity run)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Raise the flag."""
        self._set = True

    def is_set(self) -> bool:
        """Whether the flag was raised."""
        return self._set


@record_class(frozen=False, eq=False)
class _Running:
    """An activity running now: its stop flag, and its asyncio task if it is async."""

    item: ActivityWorkItem
    cancelled: _Flag = field(default_factory=_Flag)
    task: asyncio.Future[Any] | None = None


async def _guarded(coro: Awaitable[Any]) -> tuple[Any, BaseException | None]:
    """Await an async activity in its own task: its result, or what it raised (but a
    CancelledError). A task whose code raises KeyboardInterrupt or SystemExit re-raises it
    out of the event loop, which would end the loop's thread and every async activity."""
    import asyncio

    try:
        return await coro, None
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return None, exc


def _cancelling() -> bool:
    """Whether the running asyncio task is being cancelled (Python 3.11+; on 3.10, which
    cannot tell, False: a CancelledError is then the activity's own)."""
    import asyncio

    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    # The loop is closed by the thread that runs it, once stopped: shutdown(wait=False) cannot
    # close a running loop, and an unclosed one leaks its self-pipe sockets.
    try:
        loop.run_forever()
    finally:
        loop.close()


def _unregistered(name: str) -> RegistrationError:
    return RegistrationError(
        f"activity {name!r} is not registered with this runtime; "
        "register it with runtime.register_activity(fn) or @runtime.activity"
    )


def _completed(item: ActivityWorkItem, result: str | None, clock: Clock) -> TaskCompleted:
    return TaskCompleted(
        timestamp=utcnow(clock),
        task_scheduled_id=item.task_id,
        result=result,
        task_execution_id=item.task_execution_id,
    )


def _failed(item: ActivityWorkItem, exc: BaseException, clock: Clock) -> TaskFailed:
    failure: FailureDetails = failure_from_exception(exc)
    return TaskFailed(
        timestamp=utcnow(clock),
        task_scheduled_id=item.task_id,
        failure=failure,
        task_execution_id=item.task_execution_id,
    )
