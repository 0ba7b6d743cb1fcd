"""A full disk is an outage, not a failure: a SQLite store on a small tmpfs runs out of
space while an activity's 3 MiB result is committed; the runtime waits and retries, the
instance stays RUNNING, and once space returns it completes with that result, without a
restart, and the file passes ``integrity_check``.

The tmpfs needs the right to mount one (root, or a user namespace): without it the test
skips and says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import treadle as wf
from treadle.errors import StoreUnavailableError

from .helpers import Workflow, finish, wait_until

MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on its own 32 MiB tmpfs (unmounted afterwards)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path, leave: int) -> Path:
    """Fill ``directory``'s file system but ``leave`` bytes; the filler file."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    size = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, size))
    return filler


def test_a_full_disk_is_waited_out_and_nothing_is_lost(
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"sqlite:///{small_disk / 'treadle.db'}"
    big = "x" * (3 * MIB)
    digest = hashlib.sha256(big.encode()).hexdigest()
    store = wf.WorkflowClient(url)
    runtime = wf.WorkflowRuntime(url)
    filled = threading.Event()

    @runtime.activity
    def produce(ctx: wf.WorkflowActivityContext, n: int) -> str:
        assert filled.wait(20), "the disk was not filled"
        return big

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[str]:
        out: str = yield ctx.call_activity(produce, input=n)
        return hashlib.sha256(out.encode()).hexdigest()

    runtime.start()
    try:
        with caplog.at_level(logging.WARNING, logger="treadle"):
            iid = store.schedule_new_workflow(flow, input=1)  # (recorded before the disk fills)
            filler = fill(small_disk, leave=1 * MIB)
            filled.set()  # the activity returns its 3 MiB now
            wait_until(
                lambda: "is full" in caplog.text,
                timeout=20,
                what="a warning that the store is full",
            )
            time.sleep(0.5)
            state = store.get_workflow_state(iid)
            assert state is not None
            assert state.runtime_status is wf.WorkflowStatus.RUNNING, state
            # a client's write meanwhile is told the store is unavailable, and why
            with pytest.raises(StoreUnavailableError, match="is full"):
                store.schedule_new_workflow(flow, input="y" * (2 * MIB))
            filler.unlink()  # space returns: the runtime goes on by itself
            done = finish(store, iid, timeout=30)
        assert done.runtime_status is wf.WorkflowStatus.COMPLETED, done
        assert done.serialized_output == f'"{digest}"'
    finally:
        runtime.shutdown(timeout=5)
        store.close()
    with sqlite3.connect(small_disk / "treadle.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
