"""The public API: exactly these names, and `import treadle` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import treadle as wf

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(wf.__all__) == EXPECTED
    for name in wf.__all__:
        assert hasattr(wf, name), name


def test_dapr_aliases() -> None:
    assert wf.DaprWorkflowContext is wf.WorkflowContext
    assert wf.DaprWorkflowClient is wf.WorkflowClient


def test_dapr_status_names() -> None:
    names = {s.name for s in wf.WorkflowStatus}
    assert {"RUNNING", "COMPLETED", "FAILED", "TERMINATED", "PENDING", "SUSPENDED"} <= names


def test_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, json, treadle; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('grpc', 'psycopg', 'psycopg_pool', 'uvicorn', 'starlette', "
        "'google', 'prometheus_client', 'jinja2'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
