"""The SQLite file deleted or replaced under a running worker: nothing is acknowledged that
no one would read. The next commit of the runtime or of a client finds that the path no
longer names the file they opened: the runtime logs it and stops, and every call of those
stores raises StoreLostError naming the file."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import treadle as wf

from .helpers import Workflow, wait_until


def _delete(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)


def _replace(path: Path) -> None:
    other = path.parent / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    os.replace(other, path)


@pytest.mark.parametrize("lose", [_delete, _replace], ids=["deleted", "replaced"])
def test_a_lost_file_stops_the_runtime_and_fails_every_write(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    lose: Callable[[Path], None],
) -> None:
    path = tmp_path / "treadle.db"  # (the fixtures' store)
    runtime = make_runtime(start=False)
    gate = threading.Event()
    entered: list[int] = []

    @runtime.activity
    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        entered.append(n)
        assert gate.wait(20), "the gate was not opened"
        return n

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        out: int = yield ctx.call_activity(step, input=n)
        more: int = yield ctx.wait_for_external_event("more")
        return out + more

    runtime.start()
    ids = [client.schedule_new_workflow(flow, input=n) for n in range(5)]
    wait_until(lambda: len(entered) == 5, timeout=20, what="5 activities running")
    with caplog.at_level(logging.CRITICAL, logger="treadle"):
        lose(path)
        gate.set()  # their results are committed now: where no one would read them
        wait_until(
            lambda: "the workflow runtime stops" in caplog.text,
            timeout=20,
            what="the runtime saying it stops",
        )
    assert str(path) in caplog.text
    assert not runtime.wait_for_worker_ready(timeout=0)  # its dispatcher ended
    with pytest.raises(wf.StoreLostError, match=str(path)):
        client.schedule_new_workflow(flow, input=9)
    with pytest.raises(wf.StoreLostError, match="restart this process"):
        client.raise_workflow_event(ids[0], "more", data=1)
    with pytest.raises(wf.StoreLostError):
        client.get_workflow_state(ids[0])
