"""The worker side: WorkflowRuntime and what it runs on.

The package's modules, their threads and their state are listed in
:mod:`treadle.runtime.worker`; this module only re-exports the facade.
"""

from __future__ import annotations

from treadle.runtime.worker import WorkflowRuntime

__all__ = ["WorkflowRuntime"]
