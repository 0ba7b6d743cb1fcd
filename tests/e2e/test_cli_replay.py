"""``treadle workflow export`` then ``treadle replay``: CI checking a deploy against histories
saved from production, exit 1 on divergence, and clear errors for what cannot be replayed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main
from treadle.testing import Replayer

from .conftest import EVERY_BACKEND
from .helpers import Workflow, finish
from .test_cli import cli

RELEASE_1 = """
import treadle as wf
from treadle.cli import main

runtime = wf.WorkflowRuntime("memory://")


@runtime.workflow
def shipping(ctx, order):
    packed = yield ctx.call_activity("pack", input=order)
    label = yield ctx.call_activity("label", input=packed)
    return label
"""

RELEASE_2_BREAKING = RELEASE_1.replace(
    'label = yield ctx.call_activity("label", input=packed)',
    'label = yield ctx.call_activity("print_label", input=packed)',
)

RELEASE_2_PATCHED = RELEASE_1.replace(
    "    return label\n",
    '    if ctx.is_patched("insure"):\n'
    '        yield ctx.call_activity("insure", input=order)\n'
    "    return label\n",
)


def shipping(ctx: wf.DaprWorkflowContext, order: str) -> Workflow[Any]:
    packed = yield ctx.call_activity("pack", input=order)
    label = yield ctx.call_activity("label", input=packed)
    return label


def pack(ctx: wf.WorkflowActivityContext, order: str) -> str:
    return f"box of {order}"


def label(ctx: wf.WorkflowActivityContext, packed: str) -> str:
    return f"label for {packed}"


@dataclass
class Done:
    """How a ``treadle replay`` ended."""

    returncode: int
    stdout: str
    stderr: str


APPS = ("release1", "release2", "release2p")


def replay(cwd: Path, *args: str) -> Done:
    """``treadle replay args...`` run in this process, in the working directory ``cwd``
    (where the app modules are)."""
    before = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)
    finally:
        os.chdir(before)
        for name in APPS:  # (each test writes its own modules)
            sys.modules.pop(name, None)
    return Done(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def saved_run(
    store_url: str, make_runtime: Callable[..., wf.WorkflowRuntime], tmp_path: Path
) -> tuple[str, Path]:
    """An instance of ``shipping`` run to the end, exported to ``tmp_path/run.json``."""
    runtime = make_runtime(start=False)
    runtime.register_workflow(shipping)
    runtime.register_activity(pack)
    runtime.register_activity(label)
    runtime.start()
    with wf.WorkflowClient(store_url) as client:
        iid = client.schedule_new_workflow(shipping, input="lamp", instance_id="ship-1")
        assert finish(client, iid).serialized_output == '"label for box of lamp"'
        exported = cli(store_url, "workflow", "export", iid)
        assert exported.exit_code == 0, exported.output
        assert exported.stdout == client.export_workflow_history(iid)
    path = tmp_path / "run.json"
    path.write_text(exported.stdout)
    return iid, path


@pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)
def test_an_exported_history_is_a_versioned_history_file(saved_run: tuple[str, Path]) -> None:
    iid, path = saved_run
    document = json.loads(path.read_text())
    assert document["format"] == "treadle.history" and document["format_version"] == 1
    assert (document["instance_id"], document["workflow"]) == (iid, "shipping")
    assert document["status"] == "COMPLETED"
    kinds = [e["kind"] for e in document["events"]]
    assert kinds[:2] == ["OrchestratorStarted", "ExecutionStarted"]
    assert kinds[-1] == "ExecutionCompleted"
    result = Replayer([shipping]).replay(path.read_text())  # the pytest form
    assert result.ok, result.divergence


def test_replay_passes_today_s_code_and_a_patched_deploy(
    saved_run: tuple[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "release1.py").write_text(RELEASE_1)
    (tmp_path / "release2p.py").write_text(RELEASE_2_PATCHED)
    for app in ("release1:runtime", "release2p:runtime"):
        done = replay(tmp_path, "run.json", "--app", app)
        assert (done.returncode, done.stderr) == (0, ""), done.stdout
        assert done.stdout == "OK  run.json\n1 OK, 0 diverged\n"


def test_replay_catches_a_deploy_that_changes_the_code_under_saved_histories(
    saved_run: tuple[str, Path], tmp_path: Path
) -> None:
    iid, path = saved_run
    (tmp_path / "release2.py").write_text(RELEASE_2_BREAKING)
    (tmp_path / "again.json").write_text(path.read_text())
    done = replay(tmp_path, "run.json", "again.json", "--app", "release2:runtime")
    assert done.returncode == 1, done.stdout + done.stderr
    events = json.loads(path.read_text())["events"]
    index = [i for i, e in enumerate(events) if e["kind"] == "TaskScheduled"][1]
    line = (
        f"DIVERGED  run.json: instance {iid!r}, event {index}: history recorded "
        "TaskScheduled (call_activity('label')) at step 2, but the workflow called "
        "call_activity('print_label') now\n"
    )
    assert done.stdout == line + line.replace("run.json", "again.json") + "0 OK, 2 diverged\n"


@pytest.mark.parametrize(
    ("files", "app", "code", "message"),
    [
        (["missing.json"], "release1:runtime", 1, "cannot read missing.json: No such file"),
        (["junk.json"], "release1:runtime", 1, "junk.json: not a history file: not JSON"),
        (["run.json"], "release1", 2, "expected MODULE:RUNTIME, got 'release1'"),
        (["run.json"], "nosuch:runtime", 2, "cannot import module 'nosuch'"),
        (["run.json"], "release1:nothing", 2, "module 'release1' has no attribute 'nothing'"),
    ],
    ids=["missing-file", "not-a-history", "no-colon", "no-module", "no-attribute"],
)
def test_replay_says_what_cannot_be_replayed(
    saved_run: tuple[str, Path],
    tmp_path: Path,
    files: list[str],
    app: str,
    code: int,
    message: str,
) -> None:
    (tmp_path / "release1.py").write_text(RELEASE_1)
    (tmp_path / "junk.json").write_text("{not json")
    done = replay(tmp_path, *files, "--app", app)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_export_of_an_unknown_instance_fails_naming_it(store_url: str) -> None:
    with wf.WorkflowClient(store_url):
        pass  # (the store exists)
    result = cli(store_url, "workflow", "export", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr
