"""``treadle workflow graph`` (Mermaid or SVG of an instance) and ``treadle dashboard`` (the
dashboard of a store alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

import treadle as wf
from treadle.cli import main


def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return 2 * x


def doubles(ctx: wf.WorkflowContext, n: int) -> Generator[Any, Any, list[int]]:
    results = yield wf.when_all([ctx.call_activity(double, input=i) for i in range(n)])
    return list(results)


def run_doubles(url: str, n: int) -> str:
    runtime = wf.WorkflowRuntime(store=url)
    runtime.register_workflow(doubles)
    runtime.register_activity(double)
    with runtime:
        client = wf.WorkflowClient(url)
        iid = client.schedule_new_workflow(doubles, input=n, instance_id="dbl-1")
        client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        client.close()
    return iid


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def test_workflow_graph_prints_mermaid_and_writes_svg(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/g.db"
    iid = run_doubles(url, 12)
    result = cli(url, "workflow", "graph", iid)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD\n")
    assert "double \u00d712<br/>12 ✓" in result.output

    out = tmp_path / "g.svg"
    result = cli(url, "workflow", "graph", iid, "--format", "svg", "-o", str(out))
    assert result.exit_code == 0, result.output
    root = ET.fromstring(out.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "double \u00d712" in out.read_text()

    missing = cli(url, "workflow", "graph", "nope")
    assert missing.exit_code == 1 and "no workflow instance with id 'nope'" in missing.output


def test_dashboard_serves_a_store_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    iid = run_doubles(url, 3)
    env = {**os.environ, "TREADLE_API_TOKEN": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "treadle.cli", "dashboard", "--db", url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once listening
        assert first.startswith("treadle dashboard: http://127.0.0.1:"), first
        base = first.split(": ", 1)[1].strip()
        page = httpx.get(base, timeout=10)
        assert page.status_code == 200 and iid in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{base}ui/instances/{iid}?view=graph", timeout=10).status_code == 200
        assert httpx.get(f"{base}api/v1/workflows", timeout=10).status_code == 404  # no APIs
        # Without a token, a host name (as a DNS-rebinding page would use) is refused.
        port = base.rsplit(":", 1)[1].strip("/")
        rebound = httpx.get(base, headers={"host": f"rebind.example:{port}"}, timeout=10)
        assert rebound.status_code == 403 and "TREADLE_API_TOKEN" in rebound.text
        assert httpx.get(base, headers={"host": f"localhost:{port}"}, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "treadle dashboard: stopped" in out


def test_dashboard_on_a_missing_store_says_so(tmp_path: Path) -> None:
    result = cli(f"sqlite:///{tmp_path}/none.db", "dashboard")
    assert result.exit_code == 1
    assert "does not exist" in result.output
