"""The command line as a user copies it: ``--db`` anywhere, reads that create nothing,
clear answers for finished instances and absent workers, ``python -m treadle``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import treadle as wf
from treadle import cli as cli_module
from treadle.cli import main

from .helpers import finish


def treadle(*args: str) -> Result:
    """Run ``treadle args...`` in this process (no ``--db`` added)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def _finished(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> str:
    @runtime.workflow
    def quick(ctx: wf.WorkflowContext, value: int) -> int:
        return value

    iid = client.schedule_new_workflow(quick, input=3, instance_id="done-1")
    assert finish(client, iid).runtime_status is wf.WorkflowStatus.COMPLETED
    return iid


@pytest.mark.parametrize("where", ["before", "after"])
def test_db_before_or_after_the_subcommand(
    where: str, store_url: str, runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    iid = _finished(runtime, client)
    if where == "before":
        result = treadle("--db", store_url, "workflow", "get", iid)
    else:
        result = treadle("workflow", "get", iid, "--db", store_url)
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.stdout
    # between the group and its subcommand too, and the last one given wins
    result = treadle("--db", "sqlite:///elsewhere.db", "workflow", "--db", store_url, "get", iid)
    assert result.exit_code == 0, result.output


def test_every_subcommand_accepts_db() -> None:
    def commands(group: object) -> list[object]:
        assert isinstance(group, click.Group)
        found: list[object] = []
        for command in group.commands.values():
            found.append(command)
            if isinstance(command, click.Group):
                found.extend(commands(command))
        return found

    for command in commands(main):
        assert isinstance(command, click.Command)
        assert any("--db" in getattr(p, "opts", ()) for p in command.params), command.name


@pytest.mark.parametrize(
    "args",
    [["workflow", "list"], ["workflow", "get", "x"], ["workflow", "history", "x"]],
)
def test_reads_create_no_store(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "store.db"
    result = treadle(*args, "--db", f"sqlite:///{missing}")
    assert result.exit_code == 1
    assert f"the file {str(missing)!r} does not exist" in result.stderr
    assert "treadle db migrate" in result.stderr
    assert not (tmp_path / "no").exists()


def test_db_status_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "sub" / "store.db"
    result = treadle("db", "status", "--db", f"sqlite:///{missing}")
    assert result.exit_code == 0
    assert "schema version 0" in result.stdout and "no file at" in result.stdout
    assert not (tmp_path / "sub").exists()


def test_reads_of_an_existing_store_still_work(store_url: str, client: wf.WorkflowClient) -> None:
    result = treadle("workflow", "list", "--db", store_url)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["terminate"], "there is nothing to terminate"),
        (["raise-event", "{iid}", "go"], "the event would never be read"),
    ],
)
def test_actions_on_a_finished_instance_say_so(
    args: list[str],
    why: str,
    store_url: str,
    runtime: wf.WorkflowRuntime,
    client: wf.WorkflowClient,
) -> None:
    iid = _finished(runtime, client)
    argv = [a.format(iid=iid) for a in args]
    if argv == ["terminate"]:
        argv.append(iid)
    result = treadle("--db", store_url, "workflow", *argv)
    assert result.exit_code == 1
    assert f"workflow {iid!r} has already finished (COMPLETED); {why}" in result.stderr
    assert finish(client, iid).serialized_output == "3"  # untouched


def test_run_wait_says_when_no_worker_takes_it(
    store_url: str, client: wf.WorkflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "NO_WORKER_NOTICE_S", 0.2)
    result = treadle(
        "--db", store_url, "workflow", "run", "nobody_has_it", "--id", "p-1", "--wait",
        "--timeout", "2",
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "started 'nobody_has_it' as instance p-1; waiting for it to finish"
    assert "no worker has started instance p-1 after 0.2 s" in lines[1]
    assert "did not finish within 2 s (status PENDING)" in result.stderr


def test_python_dash_m_treadle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TREADLE_STORE"}
    proc = subprocess.run(
        [sys.executable, "-m", "treadle", "db", "status", "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("schema version 0")
    usage = subprocess.run(
        [sys.executable, "-m", "treadle", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 0 and usage.stdout.startswith("Usage: treadle ")
