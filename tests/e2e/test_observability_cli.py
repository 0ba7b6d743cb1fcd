"""``treadle worker`` and ``treadle serve`` log failed instances as JSON lines with
``--log-format json``, and serve Prometheus metrics: the worker on ``--metrics-port``, serve
at its HTTP ``/metrics`` along with its own."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import treadle as wf

from .helpers import wait_until
from .sidecar import serve

APP = textwrap.dedent(
    """
    import treadle as wf

    runtime = wf.WorkflowRuntime()


    @runtime.workflow
    def obs_fails(ctx, x):
        raise ValueError(f"no {x}")
        yield
    """
)
FAILED = re.compile(
    r'^dapr_runtime_workflow_execution_count\{.*status="failed".*workflow_name="obs_fails"'
    r".*\} 1\.0$",
    re.M,
)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def _failure_lines(text: str, iid: str) -> list[dict[str, object]]:
    """The JSON log lines about instance ``iid``."""
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("instance_id") == iid]


def test_worker_logs_json_and_serves_metrics(tmp_path: Path) -> None:
    (tmp_path / "obs_app.py").write_text(APP)
    db = f"sqlite:///{tmp_path / 'treadle.db'}"
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    cmd = [sys.executable, "-m", "treadle.cli", "--db", db, "worker", "obs_app:runtime"]
    cmd += ["--metrics-port", "0", "--log-format", "json"]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        port = None
        while port is None:
            line = proc.stdout.readline()
            assert line, f"the worker exited: {seen} {log.read_text()}"
            seen.append(line)
            found = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", line)
            port = int(found.group(1)) if found else None
        with wf.WorkflowClient(db) as client:
            iid = client.schedule_new_workflow("obs_fails", input=7)
            client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: FAILED.search(_get(url)), what="the failed run counted")
        [entry] = wait_until(lambda: _failure_lines(log.read_text(), iid), what="the JSON line")
        assert entry["level"] == "INFO"
        assert entry["workflow_name"] == "obs_fails"
        assert entry["error_type"] == "ValueError"
        assert entry["error_message"] == "no 7"
        assert str(entry["logger"]).startswith("treadle.")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_serve_logs_json_and_serves_the_runtime_metrics(tmp_path: Path) -> None:
    (tmp_path / "obs_app.py").write_text(APP)
    args = ("--app", "obs_app:runtime", "--log-format", "json")
    with serve(tmp_path, *args, cwd=tmp_path) as served:
        base = f"http://127.0.0.1:{served.http_port}"
        request = urllib.request.Request(
            f"{base}/v1.0/workflows/dapr/obs_fails/start?instanceID=obs-1", data=b"3"
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 202
        wait_until(lambda: FAILED.search(_get(f"{base}/metrics")), what="the failed run counted")
        _get(f"{base}/v1.0/workflows/dapr/obs-1")
        text = _get(f"{base}/metrics")
        assert "treadle_http_requests_total" in text
        assert re.search(r'operation="get_workflow",status="success"\} 1\.0$', text, re.M)
        created = re.compile(
            r'^dapr_runtime_workflow_operation_count\{.*operation="create_workflow",'
            r'status="success"\} 1\.0$',
            re.M,
        )
        assert created.search(text), text
        assert "dapr_runtime_workflow_operation_latency_bucket" in text
        _get(f"{base}/api/v1/workflows/obs-1")  # treadle's own API: not a Dapr operation
        for action in ("pause", "resume", "terminate", "purge"):
            request = urllib.request.Request(
                f"{base}/v1.0/workflows/dapr/obs-1/{action}", data=b"", method="POST"
            )
            with contextlib.suppress(urllib.error.HTTPError):  # (a finished run: refused)
                urllib.request.urlopen(request, timeout=10).close()
        text = _get(f"{base}/metrics")
        for operation in ("suspend", "resume", "terminate", "purge"):
            assert re.search(
                rf'^dapr_runtime_workflow_operation_count\{{.*operation="{operation}_workflow",'
                r'status="(success|failed)"\} 1\.0$',
                text,
                re.M,
            ), (operation, text)
        assert re.search(r'operation="get_workflow",status="success"\} 1\.0$', text, re.M)
        [line] = wait_until(lambda: _failure_lines(served.logs(), "obs-1"), what="the JSON line")
        assert line["error_type"] == "ValueError"
        assert line["workflow_name"] == "obs_fails"
