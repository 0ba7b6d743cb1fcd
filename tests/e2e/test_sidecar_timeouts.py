"""A workflow timeout through ``treadle serve``: an SDK workflow started with a timeout (by a
treadle client on the server's store) and stuck on an activity that never answers ends FAILED
with a TimeoutError at its deadline, without its SDK worker; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sdk_env import sdk_python

import treadle as wf

from .helpers import finish, kinds
from .sidecar import sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_sdk_workflow_past_its_timeout_fails_with_timeout_error(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = (
        str(request.getfixturevalue("postgres_schema_url"))
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'sidecar.db'}"
    )
    python = sdk_python()
    markers = tmp_path / "markers"
    markers.mkdir()
    with serve(tmp_path, db=db) as served, wf.WorkflowClient(db) as client:
        worker = ["worker.py", "--marker", str(markers), "--address", served.address, "--hang"]
        with sdk_process(python, *worker, log=tmp_path / "w.log"):
            iid = client.schedule_new_workflow(
                "sdk_slow_chain", input=4, timeout=timedelta(seconds=3)
            )
            state = finish(client, iid, timeout=60)
            # (the SDK ran the first turn: the timeout is queued by it; the activity may not
            # have started by the deadline on a loaded machine)
            assert "TaskScheduled" in kinds(client, iid), served.logs()
        assert state.runtime_status is wf.WorkflowStatus.FAILED, served.logs()
        assert state.failure_details is not None
        assert state.failure_details.error_type == "TimeoutError"
        assert "'sdk_slow_chain' did not finish by" in state.failure_details.message
