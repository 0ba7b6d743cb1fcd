"""The runtime's background threads: the dispatcher, and the watcher of a store that cannot
call back.

The dispatcher runs the engine's rounds until the runtime stops; before each, it may leave
the engine's turns a moment to a client of this process starting workflows in a loop, whose
starts commit them along (:meth:`~treadle.runtime.starts.LocalStarts.await_starts`). After
an error it runs the same round again after a pause that doubles, from 0.05 s up to 5 s; an
error that keeps coming back is logged whole once, then in one line. Idle, it sleeps until
a wake-up (see :mod:`treadle.runtime.wakeups`). If the store is lost (its SQLite file deleted
or replaced: :class:`~treadle.errors.StoreLostError`), it logs that and stops the run.

Threads: :func:`dispatch` is the dispatcher thread, :func:`watch` the watcher thread. No
state of their own beyond the loop's (the pause, the last error); they read whether the run
is stopping. Pauses are on the runtime's clock: real waits, each as long as the clock says
is left, cut short when a clock that jumps wakes the dispatcher.
"""

from __future__ import annotations

import logging

from treadle.clock import Clock
from treadle.core.replay import failure_from_exception
from treadle.errors import StoreLostError, StoreUnavailableError
from treadle.runtime.engine import Engine
from treadle.runtime.options import RunState
from treadle.runtime.starts import LocalStarts

__all__ = ["dispatch", "watch"]

logger = logging.getLogger(__name__)

_FIRST_PAUSE_S = 0.05
_LONGEST_PAUSE_S = 5.0


def dispatch(engine: Engine, starts: LocalStarts, run: RunState, clock: Clock) -> None:
    """The dispatcher thread: the engine's rounds until ``run`` stops (see the module)."""
    wakeups = engine.wakeups
    backoff = _FIRST_PAUSE_S
    last_error = ""  # an error that keeps coming back is shown whole once
    while not run.stopping.is_set():
        wakeups.event.clear()
        try:
            starts.await_starts()
            worked = engine.round(starts.take_handed_over)
            backoff, last_error = _FIRST_PAUSE_S, ""
        except StoreLostError as exc:
            # (the file was deleted or replaced: whatever this runtime wrote now would be
            # lost, acknowledged; it stops instead, for the operator to restore the file)
            logger.critical("the workflow runtime stops: %s", exc)
            run.stopping.set()
            return
        except StoreUnavailableError as exc:
            logger.warning("store unavailable, retrying in %.1fs: %s", backoff, exc)
            _pause(engine, run, clock, backoff)
            backoff = min(backoff * 2, _LONGEST_PAUSE_S)
            continue
        except Exception as exc:
            error = f"{type(exc).__name__}: {failure_from_exception(exc).message}"
            if error != last_error:
                logger.exception("workflow dispatcher error; retrying in %.1fs", backoff)
            else:
                logger.warning(
                    "workflow dispatcher error again, retrying in %.1fs: %s", backoff, error
                )
            last_error = error
            _pause(engine, run, clock, backoff)
            backoff = min(backoff * 2, _LONGEST_PAUSE_S)
            continue
        if not worked:
            wakeups.event.wait(wakeups.idle_timeout(engine.store))


def _pause(engine: Engine, run: RunState, clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on the clock before the next round, or until the runtime stops."""
    deadline = clock.monotonic() + seconds
    event = engine.wakeups.event
    while not run.stopping.is_set():
        left = deadline - clock.monotonic()
        if left <= 0:
            return
        event.wait(left)
        event.clear()  # (what woke it is taken by the round after the pause)


def watch(engine: Engine, run: RunState) -> None:
    """The watcher thread, for a store that cannot call back: it waits for the store's news
    of work and wakes the dispatcher (see :meth:`~treadle.runtime.wakeups.Wakeups.watch`)."""
    engine.wakeups.watch(engine.store, run.stopping)
