"""The Dapr SDK's ``WorkflowRuntime`` options that mean something to treadle, mapped onto
its own.

``WorkflowRuntime(host=..., port=..., logger_options=..., interceptors=...,
maximum_concurrent_activity_work_items=..., maximum_concurrent_orchestration_work_items=...,
maximum_thread_pool_workers=..., worker_ready_timeout=...)`` is accepted as the SDK takes it:
the concurrency limits become treadle's, the logger options configure treadle's loggers, and
the rest, which are about the SDK's connection to its sidecar, are accepted and unused.

Threads: the application's (the runtime's constructor); no state.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["apply_logger_options", "concurrency"]


def concurrency(ours: int, theirs: int | None, what: str) -> int:
    """Treadle's limit ``ours``, or the SDK's ``theirs`` when it is given.

    Raises:
        ValueError: the SDK's is below 1.
    """
    if theirs is None:
        return ours
    if not isinstance(theirs, int) or theirs < 1:
        raise ValueError(f"{what} must be an int >= 1, not {theirs!r}")
    return theirs


def apply_logger_options(options: Any) -> None:
    """Configure the ``treadle`` loggers as the SDK's ``LoggerOptions`` configure its own:
    their level, and a handler with a formatter (added once, however many runtimes share
    it). ``options`` is read by attribute (``log_level``, ``log_handler``,
    ``log_formatter``), each optional."""
    logger = logging.getLogger("treadle")
    level = getattr(options, "log_level", None)
    if level is not None:
        logger.setLevel(level)
    handler = getattr(options, "log_handler", None)
    if handler is None:
        return
    formatter = getattr(options, "log_formatter", None)
    if formatter is not None:
        handler.setFormatter(formatter)
    if handler not in logger.handlers:
        logger.addHandler(handler)
