"""The registry of workflow and activity functions a runtime can run.

A workflow name maps to its function, or to the versions registered under it
(:class:`~treadle.core.versioning.VersionedWorkflow`).

Threads: filled by the application (``register_*``), usually before the runtime starts; read
by the engine's threads (plain dict reads: a function or version registered while the runtime
runs is found at the next lookup).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from treadle.core.context import name_of
from treadle.core.versioning import VersionedWorkflow
from treadle.errors import RegistrationError

F = TypeVar("F", bound=Callable[..., Any])

Workflow = Callable[..., Any] | VersionedWorkflow
"""What a workflow name is registered to: a function, or its versions."""


class Registry:
    """Names to functions, for workflows and for activities."""

    def __init__(self) -> None:
        self.workflows: dict[str, Workflow] = {}
        self.activities: dict[str, Callable[..., Any]] = {}

    def add_workflow(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register a workflow function; return its name.

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
        self.workflows[resolved] = fn
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
        _mark(fn, name)  # scheduling by either version's function starts the workflow
        return version

    def add_activity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register an activity function; return its name.

        Raises:
            RegistrationError: the name is taken by another function, or fn is not callable.
        """
        resolved = _checked_name("activity", fn, name)
        _check_free("activity", resolved, self.activities.get(resolved), fn)
        self.activities[resolved] = fn
        _mark(fn, name)
        return resolved

    def replace_activity(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` the activity ``name``, in place of whatever is registered there.

        Raises:
            RegistrationError: fn is not callable.
        """
        self.activities[_checked_name("activity", fn, name)] = fn


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
