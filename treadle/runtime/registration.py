"""Registration: the workflow and activity functions a runtime runs, and their queues.

:class:`Registrations` is the part of :class:`~treadle.runtime.worker.WorkflowRuntime` that
owns its :class:`~treadle.runtime.registry.Registry`: the ``register_*`` methods, their
decorator forms, and what is registered.

Threads: the application's (registering, usually before ``start``, though a workflow, a
version or an activity may be registered while the runtime runs). It touches only the
registry, which the engine reads at each use (see :mod:`treadle.runtime.registry`), and,
once a version is registered, asks the runtime to retry its stalled instances
(:meth:`Registrations.retry_stalled`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from treadle.core.versioning import VersionedWorkflow
from treadle.runtime.registry import Registry, Workflow
from treadle.store.queues import Queue

__all__ = ["Registrations"]

F = TypeVar("F", bound=Callable[..., Any])


class Registrations:
    """The registration methods of a runtime (see the module); the registry is its state."""

    def __init__(self) -> None:
        self._registry = Registry()

    def retry_stalled(self) -> None:
        """Give the instances this runtime stalled another try at once (thread-safe): none
        here; the runtime, when it runs, does (see
        :meth:`~treadle.runtime.worker.WorkflowRuntime.retry_stalled`)."""

    def register_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: Queue | None = None,
        concurrency: int | None = None,
        rate_limit: int | None = None,
        period: timedelta = timedelta(seconds=1),
        priority: int = 0,
    ) -> None:
        """Register a workflow function (a generator function taking ``ctx, input``).

        Args:
            queue: start its instances on this queue, whose limits hold across every worker
                of the store (see :mod:`treadle.store.queues`): an instance over the limit
                waits, PENDING, until one running finishes.
            concurrency, rate_limit, period: or limits of its own (a queue named
                ``workflow:<name>``): at most ``concurrency`` instances running at once, at
                most ``rate_limit`` starting per ``period``.
            priority: on its queue, instances of higher priority start first.
        """
        limits = _limits(queue, concurrency, rate_limit, period, priority)
        self._registry.add_workflow(fn, name, queue=queue, limits=limits, priority=priority)

    def register_activity(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: Queue | None = None,
        concurrency: int | None = None,
        rate_limit: int | None = None,
        period: timedelta = timedelta(seconds=1),
        priority: int = 0,
    ) -> None:
        """Register an activity function (``ctx, input``; sync or ``async def``).

        Args:
            queue: run it on this queue, whose limits hold across every worker of the store
                (see :mod:`treadle.store.queues`).
            concurrency, rate_limit, period: or limits of its own (a queue named
                ``activity:<name>``): at most ``concurrency`` running at once, at most
                ``rate_limit`` starting per ``period``.
            priority: on its queue, tasks of higher priority are taken first.
        """
        limits = _limits(queue, concurrency, rate_limit, period, priority)
        self._registry.add_activity(fn, name, queue=queue, limits=limits, priority=priority)

    def limit_activity(
        self,
        name: str,
        *,
        queue: Queue | None = None,
        concurrency: int | None = None,
        rate_limit: int | None = None,
        period: timedelta = timedelta(seconds=1),
        priority: int = 0,
    ) -> None:
        """Put the activity ``name``, run by SDK workers through ``treadle serve`` (no
        function here), on a queue, as ``register_activity`` does for a function: this
        runtime then claims its tasks for its SDK workers within the queue's limits
        (``treadle serve --activity-limit NAME=N`` calls it).

        Raises:
            RegistrationError: neither a queue nor limits, or another queue of the same name
                has other limits.
        """
        limits = _limits(queue, concurrency, rate_limit, period, priority)
        self._registry.add_activity_queue(name, queue=queue, limits=limits, priority=priority)

    def replace_activity(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` the activity ``name``, in place of the function registered under that
        name (if any): a fake for a test. Attempts already running finish with the old one."""
        self._registry.replace_activity(name, fn)

    @overload
    def workflow(self, __fn: F, *, name: str | None = None, **limits: Any) -> F: ...

    @overload
    def workflow(
        self, __fn: None = None, *, name: str | None = None, **limits: Any
    ) -> Callable[[F], F]: ...

    def workflow(
        self, __fn: F | None = None, *, name: str | None = None, **limits: Any
    ) -> F | Callable[[F], F]:
        """Decorator form of :meth:`register_workflow`: ``@runtime.workflow(name=...,
        queue=..., concurrency=..., rate_limit=..., period=..., priority=...)``."""

        def deco(fn: F) -> F:
            self.register_workflow(fn, name=name, **limits)
            return fn

        return deco(__fn) if __fn is not None else deco

    def register_versioned_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        version_name: str | None = None,
        is_latest: bool,
    ) -> None:
        """Register ``fn`` as a version of the workflow ``name`` (the Dapr SDK's signature).

        New instances of ``name`` run the version registered with ``is_latest=True`` (the
        last one so registered); a running instance keeps the version it started with. A
        version may be added while the runtime runs; an instance stalled for want of it goes
        on at once.

        Args:
            fn: the workflow function of this version.
            name: the workflow name every version shares (what clients start).
            version_name: this version's name, recorded in the instances that run it;
                default ``fn.__name__``.
            is_latest: new instances run this version from now on.

        Raises:
            RegistrationError: ``name`` is registered without versions, or the version name
                is taken by another function.
        """
        self._registry.add_versioned_workflow(
            fn, name=name, version_name=version_name, is_latest=is_latest
        )
        self.retry_stalled()

    @overload
    def versioned_workflow(
        self, __fn: F, *, name: str, version_name: str | None = None, is_latest: bool
    ) -> F: ...

    @overload
    def versioned_workflow(
        self, __fn: None = None, *, name: str, version_name: str | None = None, is_latest: bool
    ) -> Callable[[F], F]: ...

    def versioned_workflow(
        self,
        __fn: F | None = None,
        *,
        name: str,
        version_name: str | None = None,
        is_latest: bool,
    ) -> F | Callable[[F], F]:
        """Decorator form of :meth:`register_versioned_workflow`:
        ``@runtime.versioned_workflow(name="order", is_latest=True)``."""

        def deco(fn: F) -> F:
            self.register_versioned_workflow(
                fn, name=name, version_name=version_name, is_latest=is_latest
            )
            return fn

        return deco(__fn) if __fn is not None else deco

    @overload
    def activity(self, __fn: F, *, name: str | None = None, **limits: Any) -> F: ...

    @overload
    def activity(
        self, __fn: None = None, *, name: str | None = None, **limits: Any
    ) -> Callable[[F], F]: ...

    def activity(
        self, __fn: F | None = None, *, name: str | None = None, **limits: Any
    ) -> F | Callable[[F], F]:
        """Decorator form of :meth:`register_activity`: ``@runtime.activity(name=...,
        queue=..., concurrency=..., rate_limit=..., period=..., priority=...)``."""

        def deco(fn: F) -> F:
            self.register_activity(fn, name=name, **limits)
            return fn

        return deco(__fn) if __fn is not None else deco

    def registered_workflow(self, name: str) -> Workflow | None:
        """The function (or versions) registered under the workflow name ``name``, or None."""
        return self._registry.workflows.get(name)

    def register_from(self, other: Registrations) -> None:
        """Register here every workflow and activity registered on ``other``, by the same names.

        ``treadle serve --app`` uses it to run an application's functions in its own runtime.

        Raises:
            RegistrationError: a name is already registered here to another function.
        """
        for name, workflow in other._registry.workflows.items():
            if not isinstance(workflow, VersionedWorkflow):
                self._registry.add_workflow(workflow, name)
                continue
            for version_name, fn in workflow.versions.items():
                self._registry.add_versioned_workflow(
                    fn, name=name, version_name=version_name, is_latest=False
                )
            if workflow.latest is not None:
                latest = workflow.versions[workflow.latest]
                self._registry.add_versioned_workflow(
                    latest, name=name, version_name=workflow.latest, is_latest=True
                )
        for name, fn in other._registry.activities.items():
            self._registry.add_activity(fn, name)

    @property
    def workflow_names(self) -> list[str]:
        """Names of the registered workflows."""
        return sorted(self._registry.workflows)

    @property
    def activity_names(self) -> list[str]:
        """Names of the registered activities."""
        return sorted(self._registry.activities)

    @property
    def registered_workflows(self) -> dict[str, Callable[..., Any] | VersionedWorkflow]:
        """The registered workflows by name (a copy): a function, or the versions of a
        versioned workflow (what :class:`treadle.testing.Replayer` replays with)."""
        return dict(self._registry.workflows)


def _limits(
    queue: Queue | None,
    concurrency: int | None,
    rate_limit: int | None,
    period: timedelta,
    priority: int,
) -> tuple[int | None, int | None, timedelta] | None:
    """The limits of a queue of its own, from registration options (None: none asked for).

    Raises:
        ValueError: options that contradict each other.
    """
    own = concurrency is not None or rate_limit is not None
    if queue is not None and own:
        raise ValueError("give queue= or concurrency=/rate_limit=, not both")
    if queue is None and priority and not own:
        raise ValueError("priority orders the work of a queue: give queue= as well")
    return (concurrency, rate_limit, period) if own else None
