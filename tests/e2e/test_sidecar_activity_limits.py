"""Queue limits for SDK workers: ``treadle serve --activity-limit NAME=N`` claims the tasks of
an activity its SDK workers run within a concurrency limit kept in the store, as
``register_activity(fn, concurrency=N)`` does for a Python worker; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sdk_env import sdk_python

import treadle as wf

from .conftest import EVERY_BACKEND
from .helpers import wait_until
from .sidecar import sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


@pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)
def test_an_sdk_activity_runs_within_its_limit(tmp_path: Path, store_url: str) -> None:
    db = store_url
    python = sdk_python()
    markers = tmp_path / "markers"
    markers.mkdir()

    def started() -> list[int]:  # the inputs of the sdk_slow_step calls that started
        return sorted(int(p.name.rsplit("-", 1)[1]) for p in markers.glob("started-*"))

    limit = ("--activity-limit", "sdk_slow_step=1")
    with serve(tmp_path, *limit, db=db) as served, wf.WorkflowClient(db) as client:
        worker = ["worker.py", "--marker", str(markers), "--address", served.address, "--hang"]
        with sdk_process(python, *worker, log=tmp_path / "w.log"):
            ids = {x: client.schedule_new_workflow("sdk_slow_chain", input=x) for x in (1, 2, 3)}
            wait_until(lambda: len(started()) >= 1, timeout=60, what="a first step")
            time.sleep(1.0)  # (time for more to start, were the limit not held)
            (first,) = started()
            # its instance ends: its task goes, and the queue's one slot with it
            client.terminate_workflow(ids[first])
            wait_until(lambda: len(started()) >= 2, timeout=60, what="a second step")
            time.sleep(0.5)
            assert len(started()) == 2, served.logs()
        (stored,) = client.list_queue_limits()
        assert (stored.queue.name, stored.queue.concurrency) == ("activity:sdk_slow_step", 1)
