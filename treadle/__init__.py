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
from treadle.runtime import WorkflowRuntime
from treadle.store.queues import Queue
from treadle.store.retention import RetentionPolicy

DaprWorkflowContext = WorkflowContext
DaprWorkflowClient = WorkflowClient

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
