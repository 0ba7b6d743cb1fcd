"""Versioning through ``treadle serve`` with the official Dapr SDK: the version and patches an
SDK worker reports are recorded where daprd records them and come back in its next turns, and
instances stall (and go on) as with daprd.

Three releases of the SDK worker (``sdk_scripts/versioned_worker.py``) follow one another on one
server: each instance started under one release goes on under the next.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from sdk_env import sdk_python

import treadle as wf
from treadle.core.history import OrchestratorStarted
from treadle.server._proto import orchestrator_service_pb2 as spb

from .helpers import events_of, finish, state_of, status_of, wait_until
from .sidecar import Served, sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


@contextlib.contextmanager
def release(served: Served, tmp_path: Path, number: int) -> Iterator[None]:
    """An SDK worker with release ``number`` connected while the block runs."""
    log = tmp_path / f"release-{number}.log"
    args = ["--address", served.address, "--release", str(number)]
    with sdk_process(sdk_python(), "versioned_worker.py", *args, log=log) as proc:
        wait_until(
            lambda: "worker ready" in log.read_text(),
            timeout=60,
            what=f"release {number}'s worker to connect",
            state=lambda: (proc.poll(), log.read_text()[-2000:]),
        )
        yield


def start(served: Served, name: str, item: str) -> str:
    response = served.stub().StartInstance(
        spb.CreateInstanceRequest(name=name, input=StringValue(value=json.dumps(item))),
        timeout=10,
    )
    return str(response.instanceId)


def go(served: Served, instance_id: str) -> None:
    served.stub().RaiseEvent(spb.RaiseEventRequest(instanceId=instance_id, name="go"), timeout=10)


def waiting(client: wf.WorkflowClient, *instance_ids: str) -> None:
    for iid in instance_ids:
        wait_until(
            functools.partial(custom_status, client, iid),
            timeout=30,
            what=f"{iid} to wait for its event",
        )


def custom_status(client: wf.WorkflowClient, instance_id: str) -> str | None:
    return state_of(client, instance_id).serialized_custom_status


def stalled(client: wf.WorkflowClient, instance_id: str) -> wf.FailureDetails:
    wait_until(
        lambda: status_of(client, instance_id) is wf.WorkflowStatus.STALLED,
        timeout=30,
        what=f"{instance_id} to stall",
        state=lambda: state_of(client, instance_id),
    )
    failure = state_of(client, instance_id).failure_details
    assert failure is not None
    return failure


def output(client: wf.WorkflowClient, instance_id: str) -> object:
    state = finish(client, instance_id, timeout=30)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
    assert state.serialized_output is not None
    return json.loads(state.serialized_output)


def names_recorded(client: wf.WorkflowClient, instance_id: str) -> set[str | None]:
    turns: list[OrchestratorStarted] = events_of(client, instance_id, "OrchestratorStarted")
    return {t.version.name for t in turns if t.version is not None}


def test_sdk_versions_and_patches_round_trip_and_stall_as_with_daprd(tmp_path: Path) -> None:
    with serve(tmp_path) as served, wf.WorkflowClient(f"sqlite:///{tmp_path / 'sidecar.db'}") as c:
        with release(served, tmp_path, 1):
            lamp = start(served, "order", "lamp")  # v1, paid under release 2
            chair = start(served, "order", "chair")  # v1, paid under release 3 (no v1)
            patchy = start(served, "patchy", "p")  # recorded p1, resumed by release 3 (no p1)
            waiting(c, lamp, chair, patchy)
        assert names_recorded(c, lamp) == {"v1"}
        patches = [e.version for e in events_of(c, patchy, "OrchestratorStarted") if e.version]
        assert [v.patches for v in patches] == [("p1",)]

        with release(served, tmp_path, 3):
            go(served, chair)
            go(served, patchy)
            assert stalled(c, chair) == wf.FailureDetails(
                message="Version not available: v1", error_type="VERSION_NOT_AVAILABLE"
            )
            mismatch = stalled(c, patchy)
            assert mismatch.error_type == "PATCH_MISMATCH"
            assert "History patches: [p1], current patches: []" in mismatch.message
            book = start(served, "order", "book")  # v2, the latest here
            plain = start(served, "patchy", "q")  # no patch evaluated in its first turn
            waiting(c, book, plain)

        with release(served, tmp_path, 2):
            # the stalled ones go on by themselves once a worker with their code connects
            assert output(c, chair) == "chair by v1"
            assert output(c, patchy) == {"p1": True, "p2": True}
            go(served, lamp)
            assert output(c, lamp) == "lamp by v1"  # not the latest: the recorded version
            go(served, book)
            assert output(c, book) == "book by v2"
            # p1 replayed over a history that ran before it: false; p2 reached only now: true
            go(served, plain)
            assert output(c, plain) == {"p1": False, "p2": True}
            fresh = start(served, "patchy", "r")
            waiting(c, fresh)
            go(served, fresh)
            assert output(c, fresh) == {"p1": True, "p2": True}
        assert names_recorded(c, chair) == {"v1"}
        assert names_recorded(c, book) == {"v2"}
        assert len(events_of(c, chair, "ExecutionStalled")) == 1
