"""The ``treadle`` command line against a SQLite file: reads, actions, the worker, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import treadle as wf
from treadle.cli import main

from .helpers import finish, status_of, wait_until

MODULE = """
import treadle as wf

runtime = wf.WorkflowRuntime()  # the worker's --db
not_a_runtime = 42


@runtime.activity
def hello(ctx, name):
    return f"Hello, {name}!"


@runtime.workflow
def greet(ctx, name):
    return (yield ctx.call_activity(hello, input=name))


@runtime.workflow
def wait_for_go(ctx, _):
    data = yield ctx.wait_for_external_event("go")
    return {"got": data}


@runtime.workflow
def boom(ctx, _):
    raise ValueError("boom")
    yield
"""


def cli(store_url: str, *args: str) -> Result:
    """Run ``treadle --db store_url args...`` in this process."""
    result = CliRunner().invoke(main, ["--db", store_url, *args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def treadle_process(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``treadle args...`` as a child process, without $TREADLE_STORE."""
    env = {k: v for k, v in os.environ.items() if k != "TREADLE_STORE"}
    return subprocess.Popen(
        [sys.executable, "-m", "treadle.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def worker(tmp_path: Path, store_url: str) -> Iterator[subprocess.Popen[str]]:
    """``treadle worker mymodule:runtime`` running in a child process."""
    (tmp_path / "mymodule.py").write_text(MODULE)
    proc = treadle_process(tmp_path, "--db", store_url, "worker", "mymodule:runtime")
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        assert banner[0].startswith("treadle worker "), banner
        assert banner[1] == "workflows: boom, greet, wait_for_go\n"
        assert banner[2] == "activities: hello\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err


@pytest.fixture
def greeted(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> str:
    """The id of a finished instance of ``greet``, run by an in-process runtime."""

    @runtime.activity
    def hello(ctx: wf.WorkflowActivityContext, name: str) -> str:
        return f"Hello, {name}!"

    @runtime.workflow
    def greet(ctx: wf.WorkflowContext, name: str):  # type: ignore[no-untyped-def]
        return (yield ctx.call_activity(hello, input=name))

    iid = client.schedule_new_workflow(greet, input="bob", instance_id="g-1")
    assert finish(client, iid).runtime_status is wf.WorkflowStatus.COMPLETED
    return iid


# ---- reads -------------------------------------------------------------------------------
def test_list_table_and_json(store_url: str, greeted: str) -> None:
    result = cli(store_url, "workflow", "list")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "INSTANCE",
        "ID",
        "NAME",
        "STATUS",
        "CREATED",
        "(UTC)",
        "UPDATED",
        "(UTC)",
    ]
    assert row.split()[:3] == ["g-1", "greet", "COMPLETED"]

    result = cli(store_url, "workflow", "list", "-o", "json", "--status", "completed")
    page = json.loads(result.stdout)
    assert [w["instance_id"] for w in page["workflows"]] == ["g-1"]
    assert page["workflows"][0]["serialized_output"] == '"Hello, bob!"'
    assert page["next_page_token"] is None

    result = cli(store_url, "workflow", "list", "-o", "json", "--status", "RUNNING")
    assert json.loads(result.stdout)["workflows"] == []
    result = cli(store_url, "workflow", "list", "-o", "json", "--name", "other")
    assert json.loads(result.stdout)["workflows"] == []


def test_list_pages(store_url: str, client: wf.WorkflowClient) -> None:
    for i in range(3):
        client.schedule_new_workflow("never_run", instance_id=f"p-{i}")
    first = json.loads(cli(store_url, "workflow", "list", "--limit", "2", "-o", "json").stdout)
    assert len(first["workflows"]) == 2 and first["next_page_token"]
    token = first["next_page_token"]
    rest = cli(store_url, "workflow", "list", "--limit", "2", "--page-token", token, "-o", "json")
    seen = [w["instance_id"] for w in first["workflows"] + json.loads(rest.stdout)["workflows"]]
    assert sorted(seen) == ["p-0", "p-1", "p-2"]
    table = cli(store_url, "workflow", "list", "--limit", "2")
    assert f"--page-token {token}" in table.stderr


def test_store_url_from_environment(store_url: str, greeted: str) -> None:
    result = CliRunner().invoke(
        main, ["workflow", "get", greeted], env={"TREADLE_STORE": store_url}
    )
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.stdout


def test_get_table_and_json(store_url: str, greeted: str) -> None:
    result = cli(store_url, "workflow", "get", greeted)
    assert result.exit_code == 0
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert fields["status"].strip() == "COMPLETED"
    assert fields["output"].strip() == '"Hello, bob!"'
    assert fields["created"].strip()[:2] == "20"  # 2026-01-02 03:04:05, not an isoformat

    state = json.loads(cli(store_url, "workflow", "get", greeted, "-o", "json").stdout)
    assert state["runtime_status"] == "COMPLETED" and state["name"] == "greet"


def test_history_table_and_json(store_url: str, greeted: str) -> None:
    result = cli(store_url, "workflow", "history", greeted)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "KIND"]
    scheduled = next(line for line in lines if "TaskScheduled" in line)
    assert scheduled.split()[3:] == ["#1", "hello", '"bob"']
    completed = next(line for line in lines if "TaskCompleted" in line)
    assert completed.split()[3:] == ["->#1", '"Hello,', 'bob!"']

    events = json.loads(cli(store_url, "workflow", "history", greeted, "-o", "json").stdout)
    kinds = [e["kind"] for e in events]
    assert {"ExecutionStarted", "TaskScheduled", "TaskCompleted", "ExecutionCompleted"} <= set(
        kinds
    )
    assert kinds[-1] == "ExecutionCompleted"


def test_history_shortens_long_payloads(
    store_url: str, runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def echo(ctx: wf.WorkflowContext, text: str) -> str:
        return text

    iid = client.schedule_new_workflow(echo, input="x" * 500)
    finish(client, iid)
    lines = cli(store_url, "workflow", "history", iid).stdout.splitlines()
    started = next(line for line in lines if "ExecutionStarted" in line)
    assert started.endswith("...") and len(started) < 200


# ---- actions, with a worker in a child process --------------------------------------------
def test_run_wait_prints_the_final_state(store_url: str, worker: subprocess.Popen[str]) -> None:
    result = cli(store_url, "workflow", "run", "greet", "--input", '"bob"', "--wait", "--id", "r1")
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.stdout and '"Hello, bob!"' in result.stdout

    result = cli(store_url, "workflow", "run", "greet", "--input", '"ann"', "--wait", "-o", "json")
    assert json.loads(result.stdout)["serialized_output"] == '"Hello, ann!"'


def test_run_wait_exits_1_unless_completed(store_url: str, worker: subprocess.Popen[str]) -> None:
    result = cli(store_url, "workflow", "run", "boom", "--wait", "--id", "b1")
    assert result.exit_code == 1
    assert "ValueError: boom" in result.stdout
    assert "workflow 'b1' finished FAILED" in result.stderr

    result = cli(store_url, "workflow", "run", "wait_for_go", "--wait", "--timeout", "0.2")
    assert result.exit_code == 1
    assert "did not finish within 0.2 s" in result.stderr


def test_run_without_wait_prints_the_id(store_url: str, client: wf.WorkflowClient) -> None:
    result = cli(store_url, "workflow", "run", "greet", "--id", "x-1", "--input", '{"a": [1]}')
    assert result.stdout == "x-1\n"
    state = client.get_workflow_state("x-1")
    assert state is not None and state.serialized_input == '{"a":[1]}'


def test_raise_event(
    store_url: str, worker: subprocess.Popen[str], client: wf.WorkflowClient
) -> None:
    cli(store_url, "workflow", "run", "wait_for_go", "--id", "e1")
    result = cli(store_url, "workflow", "raise-event", "e1", "go", "--data", '{"x": 1}')
    assert result.exit_code == 0 and "raised 'go' on e1" in result.stdout
    assert finish(client, "e1").serialized_output == '{"got":{"x":1}}'


def test_suspend_raise_resume(
    store_url: str, worker: subprocess.Popen[str], client: wf.WorkflowClient
) -> None:
    cli(store_url, "workflow", "run", "wait_for_go", "--id", "s1")
    wait_until(lambda: status_of(client, "s1") is wf.WorkflowStatus.RUNNING)
    assert cli(store_url, "workflow", "suspend", "s1").exit_code == 0
    wait_until(lambda: status_of(client, "s1") is wf.WorkflowStatus.SUSPENDED)
    cli(store_url, "workflow", "raise-event", "s1", "go", "--data", "7")
    wait_until(lambda: any(e.KIND == "EventRaised" for e in client.get_workflow_history("s1")))
    assert status_of(client, "s1") is wf.WorkflowStatus.SUSPENDED  # recorded, not acted on
    assert cli(store_url, "workflow", "resume", "s1").exit_code == 0
    assert finish(client, "s1").serialized_output == '{"got":7}'


def test_terminate(
    store_url: str, worker: subprocess.Popen[str], client: wf.WorkflowClient
) -> None:
    cli(store_url, "workflow", "run", "wait_for_go", "--id", "t1")
    result = cli(store_url, "workflow", "terminate", "t1", "--output", '"stopped"')
    assert result.exit_code == 0
    state = finish(client, "t1")
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    assert state.serialized_output == '"stopped"'


def test_purge(store_url: str, worker: subprocess.Popen[str], client: wf.WorkflowClient) -> None:
    cli(store_url, "workflow", "run", "wait_for_go", "--id", "u1")
    result = cli(store_url, "workflow", "purge", "u1")
    assert result.exit_code == 1
    assert "cannot purge 'u1'" in result.stderr and "has not finished" in result.stderr

    cli(store_url, "workflow", "terminate", "u1")
    finish(client, "u1")
    result = cli(store_url, "workflow", "purge", "u1", "--no-recursive")
    assert result.exit_code == 0 and result.stdout == "purged 1 instance\n"
    assert client.get_workflow_state("u1") is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_shuts_down_gracefully(worker: subprocess.Popen[str], signum: int) -> None:
    worker.send_signal(signum)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert out.splitlines() == ["shutting down", "stopped"]
    assert "Traceback" not in err


def test_worker_writes_every_threads_stack_on_sigusr1_and_goes_on(
    store_url: str, worker: subprocess.Popen[str], client: wf.WorkflowClient
) -> None:
    worker.send_signal(signal.SIGUSR1)
    # (the stacks are written inside the signal handler: the worker then runs as before)
    cli(store_url, "workflow", "run", "greet", "--input", '"usr"', "--id", "s1")
    assert finish(client, "s1").serialized_output == '"Hello, usr!"'
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert out.splitlines() == ["shutting down", "stopped"]
    # every thread's stack, by name (the main thread waiting for a signal, the runtime's own)
    assert "Stack of thread MainThread" in err, err
    assert err.count("Stack of thread treadle-") >= 2, err
    assert 'File "' in err


# ---- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["get", "nope"],
        ["history", "nope"],
        ["raise-event", "nope", "go"],
        ["terminate", "nope"],
        ["suspend", "nope"],
        ["resume", "nope"],
        ["purge", "nope"],
    ],
)
def test_unknown_id(store_url: str, client: wf.WorkflowClient, args: list[str]) -> None:
    result = cli(store_url, "workflow", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no workflow instance with id 'nope'")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["run", "greet", "--input", "{bad"],
        ["raise-event", "g-1", "go", "--data", "not json"],
        ["terminate", "g-1", "--output", "[1,"],
    ],
)
def test_bad_json(store_url: str, args: list[str]) -> None:
    result = cli(store_url, "workflow", *args)
    assert result.exit_code == 2
    assert "is not valid JSON" in result.stderr


def test_bad_store_url() -> None:
    result = cli("mysql://nowhere", "workflow", "list")
    assert result.exit_code == 1
    assert "unsupported store URL 'mysql://nowhere'" in result.stderr


def test_bad_page_token(store_url: str, client: wf.WorkflowClient) -> None:
    result = cli(store_url, "workflow", "list", "--page-token", "garbage")
    assert result.exit_code == 1 and "bad page cursor" in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:runtime", "cannot import module 'nosuchmodule'"),
        ("mymodule", "expected MODULE:RUNTIME, got 'mymodule'"),
        ("mymodule:missing", "module 'mymodule' has no attribute 'missing'"),
        (
            "mymodule:not_a_runtime",
            "mymodule.not_a_runtime is not a WorkflowRuntime (its type is int)",
        ),
    ],
)
def test_worker_bad_target(tmp_path: Path, store_url: str, target: str, message: str) -> None:
    (tmp_path / "mymodule.py").write_text(MODULE)
    proc = treadle_process(tmp_path, "--db", store_url, "worker", target)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err
