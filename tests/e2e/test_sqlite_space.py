"""SQLite gives space back after purges: a new file uses incremental auto-vacuum, and a
purge that leaves many free pages returns them to the disk."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import treadle as wf

from .helpers import Workflow, finish


def _checkpointed_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path)


def test_the_file_shrinks_after_purges(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, tmp_path: Path
) -> None:
    path = tmp_path / "treadle.db"  # (the file of the fixtures' store)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental

    @runtime.activity
    def produce(ctx: wf.WorkflowActivityContext, n: int) -> str:
        return str(n) * 20_000

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[str]:
        out: str = yield ctx.call_activity(produce, input=n)
        return out

    ids = [client.schedule_new_workflow(flow, input=n) for n in range(200)]
    for iid in ids:
        assert finish(client, iid).runtime_status is wf.WorkflowStatus.COMPLETED
    full = _checkpointed_size(path)
    assert full > 8_000_000, full  # each instance holds its 20 kB result three times
    for iid in ids:
        client.purge_workflow(iid)
    shrunk = _checkpointed_size(path)
    assert shrunk < full / 4, f"{full} bytes before the purges, {shrunk} after"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
