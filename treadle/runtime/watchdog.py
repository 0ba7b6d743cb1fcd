"""The turn watchdog: a workflow turn that runs past a limit is stopped and reported.

Workflow code must yield: a turn (the code run between two yields, or a replay of the
history) is expected to take milliseconds. A turn that never ends (a loop that never
yields) would hold the thread running it, and with it the engine lock every turn of the
runtime needs: every workflow of the runtime would wait for ever. So each turn is watched
(:meth:`TurnWatchdog.begin` and :meth:`TurnWatchdog.end` around the workflow's code), and a
turn still running after its limit is interrupted: :class:`TurnTimeout` is raised into its
thread (``PyThreadState_SetAsyncExc``, at the next bytecode the thread runs). The runtime
then fails that instance (see :meth:`~treadle.runtime.prepare.TurnPreparer.prepare_or_fail`)
and goes on with the others; a start whose first turn runs long goes through the store
instead (see :mod:`treadle.runtime.starts`), and the dispatcher runs that turn under the full
limit.

Code blocked in a native call (``time.sleep``, a socket read) takes the exception only when
the call returns: the watchdog then logs an error naming the instance every limit that it
stays blocked.

Threads: any thread running a turn calls :meth:`~TurnWatchdog.begin` and
:meth:`~TurnWatchdog.end` (one turn per thread at a time); the watchdog's own thread looks
at the turns under way a few times a second. State: the turns under way by thread (each
thread adds and removes its own, without a lock: one dict operation each); the watchdog
looks at them and interrupts under its lock, which a turn's end takes only when the turn is
past its deadline, to order an interruption before the end of the turn it interrupts (an
interruption never lands after its turn ended: see :meth:`TurnWatchdog.end`).
These times are real (``time.monotonic``), not the runtime's clock: they bound CPU time.
"""

from __future__ import annotations

import logging
import threading
import time

_monotonic = time.monotonic
_get_ident = threading.get_ident

__all__ = ["TurnTimeout", "TurnWatchdog"]

logger = logging.getLogger(__name__)

_TICK_S = 0.25  # how often the watchdog looks at the turns under way (at most)


class TurnTimeout(BaseException):
    """A workflow turn ran past its limit (raised into the thread running it).

    A ``BaseException``: workflow code that catches ``Exception`` does not swallow it.
    """


_Turn = tuple[float, str, float, bool, int]
"""One turn under way: its deadline (monotonic), instance, limit (seconds), whether it is a
start's first turn, and its thread. A plain tuple: one is made every turn, and only the
watchdog's own marks (:attr:`TurnWatchdog._marks`) change."""


class _Mark:
    """What the watchdog did to one overrunning turn: interrupted it, and when it last said
    so in the log."""

    __slots__ = ("turn", "warned_at")

    def __init__(self, turn: _Turn, warned_at: float) -> None:
        self.turn = turn
        self.warned_at = warned_at


class TurnWatchdog:
    """Watches the workflow turns of one run of a runtime (see the module).

    Args:
        limit_s: how long a turn may run (real seconds); None: turns are not watched.
    """

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self._turns: dict[int, _Turn] = {}
        # the turns the watchdog interrupted, by thread (under the lock)
        self._marks: dict[int, _Mark] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, stopping: threading.Event) -> None:
        """Start the watchdog's thread, which ends once ``stopping`` is set."""
        if self.limit_s is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(stopping,), name="treadle-turn-watchdog", daemon=True
        )
        self._thread.start()

    def begin(self, instance_id: str, start_limit_s: float | None = None) -> _Turn | None:
        """A turn of ``instance_id`` begins on this thread. ``start_limit_s``: it is the
        first turn of a start on a client's thread, with this (shorter) limit. Pass what this
        returns to :meth:`end` (in a ``finally``)."""
        limit = self.limit_s
        if limit is None:
            return None
        thread = _get_ident()
        if start_limit_s is None:
            turn = (_monotonic() + limit, instance_id, limit, False, thread)
        else:
            limit = min(limit, start_limit_s)
            turn = (_monotonic() + limit, instance_id, limit, True, thread)
        self._turns[thread] = turn  # (only this thread writes its key: no lock)
        return turn

    def end(self, turn: _Turn | None) -> None:
        """The turn ``turn`` ended (on the thread that began it).

        Raises:
            TurnTimeout: the turn was interrupted: whether or not the exception reached the
                workflow's code (which may have caught it), the turn is over-long.
        """
        if turn is None:
            return
        turns = self._turns
        thread = turn[4]
        if turns.get(thread) is turn:  # (only this thread writes its key)
            del turns[thread]
        # Removed, the turn is seen by no later look of the watchdog. A look under way saw
        # it only if it took its time (under the lock) before the removal, so before the
        # time read here: a turn that ends before its deadline is interrupted by none.
        if _monotonic() < turn[0]:
            return
        with self._lock:  # (a look under way is over once this is taken)
            mark = self._marks.get(thread)
            interrupted = mark is not None and mark.turn is turn
            if interrupted:
                del self._marks[thread]
        if interrupted:
            _interrupt(thread, None)  # one not delivered yet would land after the turn
            raise TurnTimeout(_message(turn))

    def forget(self) -> None:
        """Drop this thread's interrupted turn, if its :meth:`end` was cut short (by the
        interruption itself, landing there): called where the interruption is caught."""
        thread = threading.get_ident()
        with self._lock:
            mark = self._marks.pop(thread, None)
            if mark is not None and self._turns.get(thread) is mark.turn:
                del self._turns[thread]

    def _watch(self, stopping: threading.Event) -> None:
        assert self.limit_s is not None
        tick = min(_TICK_S, self.limit_s / 4)
        while not stopping.wait(tick):
            try:
                self._look()
            except Exception:  # (the watchdog must go on)
                logger.exception("turn watchdog error")

    def _look(self) -> None:
        with self._lock:
            now = _monotonic()  # (taken under the lock, before the copy: see end)
            turns = list(self._turns.values())  # (one C call: turns come and go without it)
            marks = self._marks
            for turn in turns:
                deadline, instance_id, limit_s, is_start, thread = turn
                if now < deadline:
                    continue
                mark = marks.get(thread)
                if mark is None or mark.turn is not turn:
                    marks[thread] = _Mark(turn, now)
                    if is_start:
                        logger.warning(
                            "workflow instance %r: the first turn of its start ran longer "
                            "than %g s; it is recorded without it, and its first turn runs "
                            "in the dispatcher",
                            instance_id,
                            limit_s,
                        )
                    else:
                        logger.error("%s; interrupting it", _message(turn))
                    _interrupt(thread, TurnTimeout)
                elif now - mark.warned_at >= limit_s:
                    mark.warned_at = now
                    logger.error(
                        "workflow instance %r: its turn still runs %.0f s after it was "
                        "interrupted (blocked in a native call?); the workflows of this "
                        "runtime wait for it",
                        instance_id,
                        now - deadline,
                    )


def _message(turn: _Turn) -> str:
    return (
        f"workflow instance {turn[1]!r}: a turn ran longer than {turn[2]:g} s "
        "(workflow code that never yields, such as an endless loop?); workflow code must "
        "yield between steps and do its work in activities"
    )


def _interrupt(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (None: cancel one pending)."""
    import ctypes  # (only when a turn overruns: not on every worker's start)

    set_async_exc = getattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", None)
    if set_async_exc is None:  # (not CPython: the turn is reported, not interrupted)
        return
    set_async_exc(ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None)
