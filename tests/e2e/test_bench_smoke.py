"""Smoke test of the benchmark: ``python -m bench --quick --only W1,W3`` (and with ``--sdk
python``) runs and prints.

It checks that the expected lines are there, never what the figures are.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_bench_quick_prints_header_and_one_line_per_measurement(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "W1,W3",
            "--store",
            "sqlite",
            "--json",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"

    for fact in ("treadle benchmark", "cpus", "python", "treadle", "sqlite", "store sqlite"):
        assert fact in out
    assert "synchronous=" in out and "journal_mode=" in out

    def line(workload: str, metric: str, unit: str) -> str:
        return rf"(?m)^{workload}\s+treadle sqlite w=\d+\s+{metric}\s+(?:n=\d+\s+)?{NUMBER} {unit}"

    def one_process(workload: str, metric: str, unit: str) -> str:
        """A row of the run with the runtime and the client in one process (no worker count)."""
        where = rf"{workload}\s+treadle sqlite\s+{metric}, one process"
        return rf"(?m)^{where}\s+(?:n=\d+\s+)?{NUMBER} {unit}"

    assert re.search(line("W1a", "latency median", "ms"), out), out
    assert re.search(line("W1a", "latency p99", "ms"), out), out
    assert re.search(line("W1b", "throughput", "wf/s"), out), out
    assert re.search(line("W1b", "activity throughput", "act/s"), out), out
    assert re.search(one_process("W1a", "latency median", "ms"), out), out
    assert re.search(one_process("W1a", "latency p99", "ms"), out), out
    assert re.search(one_process("W1b", "throughput", "wf/s"), out), out
    assert re.search(one_process("W1b", "activity throughput", "act/s"), out), out
    for workload in ("W1a", "W1b"):
        assert re.search(one_process(workload, "peak RSS", "MiB"), out), out
    assert len(re.findall(line("W3", "wall time", "s"), out)) == 4, out
    assert len(re.findall(line("W3", "time per step", "ms"), out)) == 4, out
    for workload in ("W1a", "W1b", "W3"):
        assert re.search(line(workload, "peak RSS per worker", "MiB"), out), out
    assert re.search(rf"(?m)^W3 ratio 1k/100 = {NUMBER} \(target < 12", out), out
    assert re.search(rf"(?m)^floor\s+disk sqlite\s+one-row durable commit\s+{NUMBER} ms", out)
    assert re.search(rf"(?m)^W3 time per step / one-row commit = {NUMBER} ", out), out
    assert not re.search(r"(?m)^W[24]\b", out), "--only W1,W3 ran other workloads"

    data = json.loads(results.read_text())
    assert {m["workload"] for m in data["measurements"]} == {"floor", "W1a", "W1b", "W3"}
    one = [m for m in data["measurements"] if m["metric"] == "throughput, one process"]
    assert [(m["workload"], m["workers"], m["unit"]) for m in one] == [("W1b", None, "wf/s")]
    assert data["errors"] == []


def test_bench_sdk_runs_the_workloads_through_treadle_serve(tmp_path: Path) -> None:
    """``--sdk python`` at a tiny size: each workload's lines through the SDK, with the CPU per
    step of the server and of the SDK, beside the embedded figures."""
    from sdk_env import sdk_python

    venv = sdk_python().parent.parent
    results = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--sdk",
            "python",
            "--only",
            "W1a,W3",
            "--store",
            "sqlite",
            "--json",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TREADLE_SDK_VENV": str(venv)},
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"
    assert "sdk-python: the official SDK through treadle serve on sqlite" in out

    def line(workload: str, metric: str, unit: str) -> str:
        where = rf"{workload}\s+sdk-python sqlite w=1\s+{metric}"
        return rf"(?m)^{where}\s+(?:n=\d+\s+)?{NUMBER} {unit}"

    assert re.search(line("W1a", "latency median", "ms"), out), out
    for workload in ("W1a", "W3"):
        assert re.search(line(workload, "server CPU per step", "ms"), out), out
        assert re.search(line(workload, "SDK CPU per step", "ms"), out), out
    assert re.search(line("W3", "time per step", "ms"), out), out
    assert re.search(r"(?m)^W1a\s+treadle sqlite w=1\s+worker CPU per step", out), out
    assert "treadle vs sdk-python on sqlite" in out
    data = json.loads(results.read_text())
    engines = {(m["engine"], m["workload"]) for m in data["measurements"]}
    assert {("sdk-python", "W1a"), ("sdk-python", "W3"), ("treadle", "W1a")} <= engines
    assert data["errors"] == []


def test_the_sdk_ab_serves_from_the_other_tree(tmp_path: Path) -> None:
    """``--sdk-ab DIR``: the other side's ``treadle serve`` imports DIR's treadle, not this
    tree's (``python -m`` puts its working directory before PYTHONPATH)."""
    import shutil

    from bench.sdk import served

    other = tmp_path / "other"
    shutil.copytree(ROOT / "treadle", other / "treadle")
    marker = "serving from the other tree"
    with (other / "treadle" / "server" / "serve.py").open("a") as module:
        module.write(f"\nimport sys as _sys\n\nprint({marker!r}, file=_sys.stderr, flush=True)\n")
    for tree, tag in ((other, "other"), (None, "this")):
        with served(f"sqlite:///{tmp_path / tag}.db", tmp_path, tag, tree) as (_, address):
            assert address.rsplit(":", 1)[1].isdigit()
        log = (tmp_path / f"{tag}-serve.log").read_text()
        assert (marker in log) == (tree is not None), log[-2000:]


def test_sqlite_statements_prints_each_statement_per_step_with_its_plan() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sqlite_statements", "W3", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# W3, 40 steps: per step, each statement's runs and time (us)"
    commit = [line for line in lines if line.endswith("  COMMIT")]
    assert commit and float(commit[0].split()[0]) >= 1.0  # (a commit a step, at least)
    update = lines.index(next(line for line in lines if "  UPDATE instances SET" in line))
    assert "plan: SEARCH instances USING INDEX" in lines[update + 1]
    assert not [line for line in lines if line.startswith("!!")]  # (no full scan)
    bad = subprocess.run(
        [sys.executable, "-m", "bench.sqlite_statements", "W9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert bad.returncode == 2 and "usage:" in bad.stderr
