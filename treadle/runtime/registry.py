"""The registry of workflow and activity functions a runtime can run.

Threads: filled by the application (``register_*``), usually before the runtime starts; read
by the engine's threads (plain dict reads: a function registered while the runtime runs is
found at the next lookup).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from treadle.core.context import name_of
from treadle.errors import RegistrationError

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Names to functions, for workflows and for activities."""

    def __init__(self) -> None:
        self.workflows: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, Callable[..., Any]] = {}

    def add_workflow(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register a workflow function; return its name.

        Raises:
            RegistrationError: the name is taken by another function, or fn is not callable.
        """
        return self._add(self.workflows, "workflow", fn, name)

    def add_activity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register an activity function; return its name.

        Raises:
            RegistrationError: the name is taken by another function, or fn is not callable.
        """
        return self._add(self.activities, "activity", fn, name)

    @staticmethod
    def _add(
        table: dict[str, Callable[..., Any]], kind: str, fn: Callable[..., Any], name: str | None
    ) -> str:
        if not callable(fn):
            raise RegistrationError(f"cannot register {fn!r} as a {kind}: it is not callable")
        resolved = name or name_of(fn)
        if not resolved or not isinstance(resolved, str):
            raise RegistrationError(f"a {kind} needs a non-empty string name")
        existing = table.get(resolved)
        if existing is not None and existing is not fn:
            raise RegistrationError(
                f"{kind} name {resolved!r} is already registered to {existing!r}; "
                f"pass name=... to register {fn!r} under another name"
            )
        table[resolved] = fn
        if name is not None:
            # builtins and the like refuse attributes: callers then pass the name as a string
            with contextlib.suppress(AttributeError, TypeError):
                fn._treadle_name = name  # type: ignore[attr-defined]
        return resolved
