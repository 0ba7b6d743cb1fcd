"""Finding an application's runtime from a ``MODULE:RUNTIME`` string (``treadle worker``,
``treadle serve --app``).

Threads: the command's main thread, before the runtime starts. No state.
"""

from __future__ import annotations

import importlib
import os
import sys

from treadle.errors import InvalidInputError
from treadle.runtime.worker import WorkflowRuntime


def load_runtime(target: str) -> WorkflowRuntime:
    """Import ``MODULE:RUNTIME`` (the current directory included) and return the runtime.

    Raises:
        InvalidInputError: the target is malformed, the module cannot be imported, or the
            attribute is missing or not a :class:`WorkflowRuntime`.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InvalidInputError(f"expected MODULE:RUNTIME, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import module {module_name!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise InvalidInputError(f"module {module_name!r} has no attribute {attr!r}")
    runtime = getattr(module, attr)
    if not isinstance(runtime, WorkflowRuntime):
        kind = type(runtime).__name__
        raise InvalidInputError(
            f"{module_name}.{attr} is not a WorkflowRuntime (its type is {kind})"
        )
    return runtime
