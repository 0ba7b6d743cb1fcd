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


class _Turn:
    """One turn under way."""

    __slots__ = (
        "deadline",
        "instance_id",
        "interrupted",
        "is_start",
        "limit_s",
        "thread",
        "warned_at",
    )

    def __init__(self, instance_id: str, limit_s: float, thread: int, is_start: bool) -> None:
        self.instance_id = instance_id
        self.limit_s = limit_s
        self.is_start = is_start
        self.deadline = _monotonic() + limit_s
        self.thread = thread
        self.interrupted = False
        self.warned_at = 0.0


class TurnWatchdog:
    """Watches the workflow turns of one run of a runtime (see the module).

    Args:
        limit_s: how long a turn may run (real seconds); None: turns are not watched.
    """

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self._turns: dict[int, _Turn] = {}
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
        if start_limit_s is None:
            turn = _Turn(instance_id, limit, _get_ident(), False)
        else:
            turn = _Turn(instance_id, min(limit, start_limit_s), _get_ident(), True)
        self._turns[turn.thread] = turn  # (only this thread writes its key: no lock)
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
        if turns.get(turn.thread) is turn:  # (only this thread writes its key)
            del turns[turn.thread]
        # Removed, the turn is seen by no later look of the watchdog. A look under way saw
        # it only if it took its time (under the lock) before the removal, so before the
        # time read here: a turn that ends before its deadline is interrupted by none.
        if not turn.interrupted and _monotonic() < turn.deadline:
            return
        with self._lock:  # (a look under way is over once this is taken)
            interrupted = turn.interrupted
        if interrupted:
            _interrupt(turn.thread, None)  # one not delivered yet would land after the turn
            raise TurnTimeout(_message(turn))

    def forget(self) -> None:
        """Drop this thread's interrupted turn, if its :meth:`end` was cut short (by the
        interruption itself, landing there): called where the interruption is caught."""
        with self._lock:
            turn = self._turns.get(threading.get_ident())
            if turn is not None and turn.interrupted:
                del self._turns[turn.thread]

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
            for turn in turns:
                if now < turn.deadline:
                    continue
                if not turn.interrupted:
                    turn.interrupted = True
                    turn.warned_at = now
                    if turn.is_start:
                        logger.warning(
                            "workflow instance %r: the first turn of its start ran longer "
                            "than %g s; it is recorded without it, and its first turn runs "
                            "in the dispatcher",
                            turn.instance_id,
                            turn.limit_s,
                        )
                    else:
                        logger.error("%s; interrupting it", _message(turn))
                    _interrupt(turn.thread, TurnTimeout)
                elif now - turn.warned_at >= turn.limit_s:
                    turn.warned_at = now
                    logger.error(
                        "workflow instance %r: its turn still runs %.0f s after it was "
                        "interrupted (blocked in a native call?); the workflows of this "
                        "runtime wait for it",
                        turn.instance_id,
                        now - turn.deadline,
                    )


def _message(turn: _Turn) -> str:
    return (
        f"workflow instance {turn.instance_id!r}: a turn ran longer than {turn.limit_s:g} s "
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
