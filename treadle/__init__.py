"""treadle: durable workflows for Python, with the Dapr workflow programming model.

``import treadle as wf`` is all a user needs::

    runtime = wf.WorkflowRuntime()          # sqlite:///treadle.db unless told otherwise

    @runtime.activity
    def step1(ctx, x):
        return x + 1

    @runtime.workflow
    def chain(ctx: wf.DaprWorkflowContext, x: int):
        y = yield ctx.call_activity(step1, input=x)
        return y

    with runtime:
        client = wf.DaprWorkflowClient()
        iid = client.schedule_new_workflow(chain, input=1)
        print(client.wait_for_workflow_completion(iid).serialized_output)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.errors import (
    CompensationError,
    FailureDetails,
    InvalidInputError,
    LeaseLostError,
    NonDeterminismError,
    PropagationNotFoundError,
    RegistrationError,
    SchemaVersionError,
    StoreError,
    StoreLostError,
    StoreUnavailableError,
    TaskFailedError,
    TaskTimeoutError,
    TreadleError,
    WorkflowAlreadyExistsError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowStateError,
)

if TYPE_CHECKING:
    from treadle.client import WorkflowClient, WorkflowPage, WorkflowState, WorkflowStatus
    from treadle.core.context import WorkflowActivityContext, WorkflowContext, alternate_name
    from treadle.core.fanout import when_all_bounded
    from treadle.core.propagation import (
        ActivityResult,
        ChildWorkflowResult,
        PropagatedHistory,
        PropagationScope,
        WorkflowResult,
    )
    from treadle.core.retry import RetryPolicy
    from treadle.core.saga import Saga
    from treadle.core.tasks import Task, when_all, when_any
    from treadle.runtime import WorkflowRuntime
    from treadle.store.queues import Queue
    from treadle.store.retention import RetentionPolicy

    DaprWorkflowContext = WorkflowContext
    DaprWorkflowClient = WorkflowClient

# The rest of the API is imported on first use (PEP 562), so that a process imports only
# what it runs: a worker never loads the client, a client never loads the runtime.
_LAZY: dict[str, tuple[str, str]] = {
    "WorkflowClient": ("treadle.client", "WorkflowClient"),
    "DaprWorkflowClient": ("treadle.client", "WorkflowClient"),
    "WorkflowPage": ("treadle.client", "WorkflowPage"),
    "WorkflowState": ("treadle.client", "WorkflowState"),
    "WorkflowStatus": ("treadle.client", "WorkflowStatus"),
    "WorkflowActivityContext": ("treadle.core.context", "WorkflowActivityContext"),
    "WorkflowContext": ("treadle.core.context", "WorkflowContext"),
    "DaprWorkflowContext": ("treadle.core.context", "WorkflowContext"),
    "alternate_name": ("treadle.core.context", "alternate_name"),
    "when_all_bounded": ("treadle.core.fanout", "when_all_bounded"),
    "ActivityResult": ("treadle.core.propagation", "ActivityResult"),
    "ChildWorkflowResult": ("treadle.core.propagation", "ChildWorkflowResult"),
    "PropagatedHistory": ("treadle.core.propagation", "PropagatedHistory"),
    "PropagationScope": ("treadle.core.propagation", "PropagationScope"),
    "WorkflowResult": ("treadle.core.propagation", "WorkflowResult"),
    "RetryPolicy": ("treadle.core.retry", "RetryPolicy"),
    "Saga": ("treadle.core.saga", "Saga"),
    "Task": ("treadle.core.tasks", "Task"),
    "when_all": ("treadle.core.tasks", "when_all"),
    "when_any": ("treadle.core.tasks", "when_any"),
    "WorkflowRuntime": ("treadle.runtime", "WorkflowRuntime"),
    "Queue": ("treadle.store.queues", "Queue"),
    "RetentionPolicy": ("treadle.store.retention", "RetentionPolicy"),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module (PEP 562). A subpackage
    (``treadle.client``, ``treadle.store``...) is imported as an attribute too, as it was
    when this module imported them all."""
    import importlib
    import importlib.util

    lazy = _LAZY.get(name)
    if lazy is None:
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module 'treadle' has no attribute {name!r}")
        return importlib.import_module(f"{__name__}.{name}")
    value = getattr(importlib.import_module(lazy[0]), lazy[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the ones not imported yet included."""
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ActivityResult",
    "ChildWorkflowResult",
    "CompensationError",
    "DaprWorkflowClient",
    "DaprWorkflowContext",
    "FailureDetails",
    "InvalidInputError",
    "LeaseLostError",
    "NonDeterminismError",
    "PropagatedHistory",
    "PropagationNotFoundError",
    "PropagationScope",
    "Queue",
    "RegistrationError",
    "RetentionPolicy",
    "RetryPolicy",
    "Saga",
    "SchemaVersionError",
    "StoreError",
    "StoreLostError",
    "StoreUnavailableError",
    "Task",
    "TaskFailedError",
    "TaskTimeoutError",
    "TreadleError",
    "WorkflowActivityContext",
    "WorkflowAlreadyExistsError",
    "WorkflowClient",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowPage",
    "WorkflowResult",
    "WorkflowRuntime",
    "WorkflowState",
    "WorkflowStateError",
    "WorkflowStatus",
    "__version__",
    "alternate_name",
    "when_all",
    "when_all_bounded",
    "when_any",
]
