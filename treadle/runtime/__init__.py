"""The worker side: WorkflowRuntime and what it runs on."""

from __future__ import annotations

from treadle.runtime.worker import WorkflowRuntime

__all__ = ["WorkflowRuntime"]
