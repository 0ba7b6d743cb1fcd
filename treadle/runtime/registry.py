"""The registry of workflow and activity functions a runtime can run.

A workflow name maps to its function, or to the versions registered under it
(:class:`~treadle.core.versioning.VersionedWorkflow`).

Threads: filled by the application (``register_*``), usually before the runtime starts; read
by the engine's threads (plain dict reads: a function or version registered while the runtime
runs is found at the next lookup). :attr:`Registry.workflow_generation` changes with every
workflow registration: the generator cache (:mod:`treadle.runtime.cache`) compares it to
know when the code registered may have changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from treadle.core.context import name_of
from treadle.core.versioning import VersionedWorkflow
from treadle.errors import RegistrationError
from treadle.store.queues import Queue, QueuedNames

F = TypeVar("F", bound=Callable[..., Any])

Workflow = Callable[..., Any] | VersionedWorkflow
"""What a workflow name is registered to: a function, or its versions."""


class Registry:
    """Names to functions, for workflows and for activities."""

    def __init__(self) -> None:
        self.workflows: dict[str, Workflow] = {}
        self.activities: dict[str, Callable[..., Any]] = {}
        self.workflow_generation = 0
        """Changes whenever a workflow or a version of one is registered."""
        self.queued: dict[str, tuple[Queue, int]] = {}
        """The activities on a queue (see :mod:`treadle.store.queues`): queue and priority."""
        self.queued_workflows: dict[str, tuple[Queue, int]] = {}
        """The workflows on a queue: queue and priority."""

    def add_workflow(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        queue: Queue | None = None,
        limits: tuple[int | None, int | None, timedelta] | None = None,
        priority: int = 0,
    ) -> str:
        """Register a workflow function (on ``queue``, or on a queue of its own with
        ``limits``, as :meth:`add_activity`); return its name.

        Raises:
            RegistrationError: the name is taken by another function or by versions, or fn
                is not callable.
        """
        resolved = _checked_name("workflow", fn, name)
        existing = self.workflows.get(resolved)
        if isinstance(existing, VersionedWorkflow):
            raise RegistrationError(
                f"workflow name {resolved!r} is registered with versions "
                f"{sorted(existing.versions)}; register {fn!r} as one more version with "
                "register_versioned_workflow, or under another name"
            )
        _check_free("workflow", resolved, existing, fn)
        if limits is not None:
            queue = Queue(f"workflow:{resolved}", *limits)
        if queue is not None:
            self._check_queue(queue)
            self.queued_workflows[resolved] = (queue, priority)
        self.workflows[resolved] = fn
        self.workflow_generation += 1
        _mark(fn, name)
        return resolved

    def add_versioned_workflow(
        self, fn: Callable[..., Any], *, name: str, version_name: str | None, is_latest: bool
    ) -> str:
        """Register ``fn`` as a version of the workflow ``name``; return the version name
        (``version_name``, default the function's name).

        Raises:
            RegistrationError: the name is registered without versions, the version name is
                taken by another function, or fn is not callable.
        """
        if not callable(fn):
            raise RegistrationError(f"cannot register {fn!r} as a workflow: it is not callable")
        if not name or not isinstance(name, str):
            raise RegistrationError("a versioned workflow needs a non-empty string name")
        version = version_name if version_name is not None else getattr(fn, "__name__", "")
        if not version or not isinstance(version, str):
            raise RegistrationError(
                f"a version of workflow {name!r} needs a non-empty string version_name"
            )
        existing = self.workflows.get(name)
        if existing is not None and not isinstance(existing, VersionedWorkflow):
            raise RegistrationError(
                f"workflow name {name!r} is already registered to {existing!r} without a "
                "version; register every version of it with register_versioned_workflow"
            )
        versions = existing if existing is not None else VersionedWorkflow(name)
        versions.add(version, fn, is_latest=is_latest)
        self.workflows[name] = versions
        self.workflow_generation += 1
        _mark(fn, name)  # scheduling by either version's function starts the workflow
        return version

    def add_activity(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        queue: Queue | None = None,
        limits: tuple[int | None, int | None, timedelta] | None = None,
        priority: int = 0,
    ) -> str:
        """Register an activity function (on ``queue``, with ``priority`` there); return its
        name. ``limits`` (concurrency, rate limit, period) puts it on a queue of its own,
        ``activity:<name>``.

        Raises:
            RegistrationError: the name is taken by another function, fn is not callable, or
                another queue of the same name has other limits.
        """
        resolved = _checked_name("activity", fn, name)
        _check_free("activity", resolved, self.activities.get(resolved), fn)
        if limits is not None:
            queue = Queue(f"activity:{resolved}", *limits)
        if queue is not None:
            self._check_queue(queue)
        self.activities[resolved] = fn
        if queue is not None:
            self.queued[resolved] = (queue, priority)
        _mark(fn, name)
        return resolved

    def add_activity_queue(
        self,
        name: str,
        *,
        queue: Queue | None = None,
        limits: tuple[int | None, int | None, timedelta] | None = None,
        priority: int = 0,
    ) -> None:
        """Put the activity ``name``, whose code runs elsewhere (SDK workers behind
        ``treadle serve``), on ``queue`` (or, with ``limits``, on ``activity:<name>``).

        Raises:
            RegistrationError: no name, no queue, or another queue of the same name has other
                limits.
        """
        if not name or not isinstance(name, str):
            raise RegistrationError("an activity queue needs the activity's name")
        if limits is not None:
            queue = Queue(f"activity:{name}", *limits)
        if queue is None:
            raise RegistrationError(f"activity {name!r}: give a queue, or its limits")
        self._check_queue(queue)
        self.queued[name] = (queue, priority)

    def replace_activity(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` the activity ``name``, in place of whatever is registered there.

        Raises:
            RegistrationError: fn is not callable.
        """
        self.activities[_checked_name("activity", fn, name)] = fn

    def queues(self) -> list[QueuedNames]:
        """The queues of the activities registered here, each with its activities'
        priorities, by queue name."""
        return _grouped(self.queued)

    def workflow_queues(self) -> list[QueuedNames]:
        """The queues of the workflows registered here, likewise."""
        return _grouped(self.queued_workflows)

    def _check_queue(self, queue: Queue) -> None:
        for other, _ in [*self.queued.values(), *self.queued_workflows.values()]:
            if other.name == queue.name and other != queue:
                raise RegistrationError(
                    f"queue {queue.name!r} is registered with other limits ({other}); "
                    "give everything on it the same Queue"
                )


def _grouped(queued: dict[str, tuple[Queue, int]]) -> list[QueuedNames]:
    by_queue: dict[str, tuple[Queue, dict[str, int]]] = {}
    for name, (queue, priority) in sorted(queued.items()):
        by_queue.setdefault(queue.name, (queue, {}))[1][name] = priority
    return [QueuedNames(q, names) for _, (q, names) in sorted(by_queue.items())]


def _checked_name(kind: str, fn: Callable[..., Any], name: str | None) -> str:
    if not callable(fn):
        raise RegistrationError(f"cannot register {fn!r} as a {kind}: it is not callable")
    resolved = name or name_of(fn)
    if not resolved or not isinstance(resolved, str):
        raise RegistrationError(f"a {kind} needs a non-empty string name")
    return resolved


def _check_free(kind: str, name: str, existing: object, fn: Callable[..., Any]) -> None:
    if existing is not None and existing is not fn:
        raise RegistrationError(
            f"{kind} name {name!r} is already registered to {existing!r}; "
            f"pass name=... to register {fn!r} under another name"
        )


def _mark(fn: Callable[..., Any], name: str | None) -> None:
    """Remember the name ``fn`` was registered under, so scheduling by function finds it."""
    if name is not None:
        # builtins and the like refuse attributes: callers then pass the name as a string
        with contextlib.suppress(AttributeError, TypeError):
            fn._treadle_name = name  # type: ignore[attr-defined]
