"""Instances started by treadle before schema 9 (which recorded each activity call's timeout
as a timer) finish after the upgrade, on every backend.

The old code (``git archive debadc3``, the last commit before the change) runs the workflows
of ``legacy_timeouts_app`` in a child process on the test's store and is killed mid-way; a
runtime of this code then opens the store (migrating it), and every instance finishes as the
old code would have finished it: the calls already made keep their timers (one fires after
the upgrade), and the calls made after it are timed by the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import treadle as wf
from treadle.core.history import TaskFailed, TaskScheduled, TimerCreated, TimerFired

from . import legacy_timeouts_app as app

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OLD_COMMIT = "debadc3"


@pytest.fixture(scope="session")
def old_treadle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The treadle tree of schema 8 (from git), or skip if git or the commit is missing."""
    root = tmp_path_factory.mktemp("old_treadle")
    archive = root / "old.tar"
    try:
        with archive.open("wb") as out:
            subprocess.run(
                ["git", "-C", str(REPO), "archive", OLD_COMMIT, "treadle"],
                stdout=out,
                stderr=subprocess.DEVNULL,
                check=True,
                timeout=60,
            )
    except (OSError, subprocess.SubprocessError):
        pytest.skip(f"no git checkout with commit {OLD_COMMIT}")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


def run_old_midway(old: Path, store_url: str, directory: Path) -> None:
    """Run the workflows on the old code until each is mid-way, then kill that process."""
    env = {**os.environ, "PYTHONPATH": f"{old}{os.pathsep}{HERE}"}
    done = subprocess.run(
        [sys.executable, str(HERE / "legacy_timeouts_old.py"), "midway", store_url, str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "midway" in done.stdout, done.stderr[-3000:]


def test_instances_of_the_old_code_finish(
    old_treadle: Path,
    store_url: str,
    make_runtime: Callable[..., wf.WorkflowRuntime],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = tmp_path / "gates"
    directory.mkdir()
    run_old_midway(old_treadle, store_url, directory)
    scheduled_at = time.monotonic()
    monkeypatch.setenv("TREADLE_LEGACY_DIR", str(directory))
    with wf.WorkflowClient(store_url) as client:  # (opening the store migrates it)
        runtime = make_runtime(start=False)
        app.register(runtime)
        runtime.start()
        (directory / "open").touch()
        for name, expected in app.EXPECTED.items():
            state = client.wait_for_workflow_completion(name, timeout_in_seconds=60)
            assert state is not None
            assert state.runtime_status is wf.WorkflowStatus.COMPLETED, (
                name,
                state.failure_details,
            )
            assert state.serialized_output is not None
            assert json.loads(state.serialized_output) == expected, name
        assert time.monotonic() - scheduled_at < 60

        # the old timer of `waiting` fired after the upgrade; the store timed its next call
        history = client.get_workflow_history("waiting")
        fired = [e for e in history if isinstance(e, TimerFired)]
        assert [e.timer_id for e in fired] == [2]
        failed = [e for e in history if isinstance(e, TaskFailed)]
        assert [(e.task_scheduled_id, e.failure.error_type) for e in failed] == [
            (3, "TimeoutError")
        ]
        # `single`: the call made after the upgrade comes after the old timer's id, with no timer
        history = client.get_workflow_history("single")
        assert [e.event_id for e in history if isinstance(e, TaskScheduled)] == [1, 3]
        assert [e.event_id for e in history if isinstance(e, TimerCreated)] == [2, 4]
