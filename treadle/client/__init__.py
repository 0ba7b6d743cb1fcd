"""The client layer: start, inspect, signal and manage workflow instances.

- :class:`WorkflowClient` (:mod:`treadle.client.workflow_client`): the Dapr client API, with
  Python values.
- :class:`InstanceOperations` (:mod:`treadle.client.operations`): the same operations with
  payloads as JSON text; the client, the gRPC sidecar and the HTTP API all go through it.
- :mod:`treadle.core.validation`: the checks of ids, names and payloads they share (with
  the workflow context, hence in the core); :mod:`treadle.client.waiting`: the loop of every
  Wait call; :mod:`treadle.client.rerun`: the new instance of a rerun.
- :class:`WorkflowState`, :class:`WorkflowPage` (:mod:`treadle.client.state`) and
  :class:`WorkflowStatus` (:mod:`treadle.client.status`): what they report.

The client layer sits beside the runtime (neither imports the other) and above the store.
"""

from __future__ import annotations

from treadle.client.operations import InstanceOperations, PurgeOutcome
from treadle.client.state import WorkflowPage, WorkflowState
from treadle.client.status import WorkflowStatus
from treadle.client.workflow_client import WorkflowClient
from treadle.core.validation import (
    MAX_INSTANCE_ID_LENGTH,
    MAX_NAME_LENGTH,
    check_json,
    validate_instance_id,
    validate_name,
)

__all__ = [
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "InstanceOperations",
    "PurgeOutcome",
    "WorkflowClient",
    "WorkflowPage",
    "WorkflowState",
    "WorkflowStatus",
    "check_json",
    "validate_instance_id",
    "validate_name",
]
