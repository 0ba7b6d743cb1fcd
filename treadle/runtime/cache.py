"""The generator cache: each instance's live workflow execution, kept between its turns.

A new event resumes the cached generator instead of replaying the instance's whole history,
so a long workflow costs O(n), not O(n^2). An entry is valid while the stored instance is at
the entry's version; the engine drops it (:meth:`InstanceCache.evict`) whenever that may no
longer hold.

Threads: the cache is changed only under the engine lock, by whichever thread holds it (the
dispatcher in a round, an activity thread committing a step inline, a client thread taking
on its start or committing the engine's turns with it: see :mod:`treadle.runtime.starts`).
Reads without the lock (:meth:`InstanceCache.get`,
:attr:`InstanceCache.held_count`) are hints that the caller checks again under it.

An instance not held here whose next turn comes after a workflow (or a version of one) was
registered on the runtime replays its history instead of resuming its generator: the turn then
runs the code registered now, as with the Dapr SDK, which replays every turn. Otherwise the
generator is resumed however long the instance waited (a timer, an event, a child), so a
workflow that waits many times costs O(n), not O(n^2). A held instance (its lease kept between
turns, in the middle of its steps) always resumes.

State: the executions by instance id, least recently used first, and the ids of the instances
whose lease this runtime keeps between turns ("held"), which trimming never drops.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from treadle.core.records import record_class
from treadle.core.replay import WorkflowExecution

__all__ = ["CachedExecution", "InstanceCache"]


@record_class(frozen=False)
class CachedExecution:
    """An instance's live execution, valid while the stored version equals ``version``."""

    execution: WorkflowExecution
    """The workflow generator, advanced to the end of the instance's committed history."""
    name: str
    """The workflow name."""
    execution_id: str
    """The run the execution belongs to."""
    version: int
    """The instance version the execution is at."""
    history_len: int
    """Events in the run's stored history."""
    held: bool = False
    """This runtime keeps the instance's lease between turns."""
    registry_generation: int = 0
    """The registry's workflow generation when the execution began (see the module)."""


class InstanceCache:
    """The live executions of the instances this runtime worked on, most recent last.

    Args:
        size: how many executions of instances not held are kept (held ones always are).
    """

    __slots__ = ("_entries", "_held", "_size", "get")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, CachedExecution] = OrderedDict()
        self._held: set[str] = set()
        self.get: Callable[[str], CachedExecution | None] = self._entries.get
        """The instance's execution, if cached (the dict's own ``get``: a step asks up to
        three times, and a method would be a Python call each)."""

    def resumable(self, instance_id: str, registry_generation: int) -> CachedExecution | None:
        """The instance's execution to resume its next turn from, the registry's workflow
        generation being ``registry_generation`` now: None if not cached, or if not held and
        a workflow was registered since the execution began (then it is dropped: the turn
        replays the history with the code registered now)."""
        cached = self._entries.get(instance_id)
        if (
            cached is not None
            and not cached.held
            and cached.registry_generation != registry_generation
        ):
            self.evict(instance_id)
            return None
        return cached

    def keep(self, instance_id: str, cached: CachedExecution) -> None:
        """Store ``cached`` as the instance's execution after a committed turn (most recently
        used now), held or not as ``cached.held`` says; trim the cache to size."""
        if cached.held:
            self._held.add(instance_id)
        else:
            self._held.discard(instance_id)
        self._entries[instance_id] = cached
        self._entries.move_to_end(instance_id)
        if len(self._entries) > self._size:
            self._trim()

    def evict(self, instance_id: str) -> None:
        """Forget the instance's execution: its next turn replays its history."""
        self._entries.pop(instance_id, None)
        self._held.discard(instance_id)

    @property
    def held_count(self) -> int:
        """How many instances this runtime holds."""
        return len(self._held)

    def held_ids(self) -> list[str]:
        """The ids of the instances this runtime holds, sorted."""
        return sorted(self._held)

    def clear(self) -> None:
        """Forget every execution."""
        self._entries.clear()
        self._held.clear()

    def _trim(self) -> None:
        """Drop the least recently used executions not held, down to the size."""
        while len(self._entries) > self._size:
            for iid, cached in self._entries.items():
                if not cached.held:
                    del self._entries[iid]
                    break
            else:
                return
