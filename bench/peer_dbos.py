"""The DBOS Transact peer: the same workloads, one ``python -m bench.dbos_app`` per run.

DBOS is a library that runs workflows inside the application process, so each run is one
process that launches DBOS, starts the workflows and waits for them (its idiomatic model);
its peak RSS is that process's. It is never installed by the benchmark: the peer runs only
when ``import dbos`` works.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench import procs
from bench.report import median, percentile
from bench.workloads import (
    Bench,
    BenchError,
    RecoveryOutcome,
    read_executions,
    report_recovery,
    run_workloads,
)

TOPOLOGY = (
    "treadle: driver + 1 worker process, cross-process wake-ups; "
    "dbos: one process, DBOS.start_workflow and handles; fan-out on a DBOS queue"
)


def available() -> bool:
    """Whether ``import dbos`` works here."""
    try:
        import dbos  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except Exception:
        return False
    return True


def describe() -> str:
    """The peer line of the header."""
    if not available():
        return "dbos: SKIPPED (`import dbos` failed; pip install dbos to compare)"
    version = importlib.metadata.version("dbos")
    return (
        f"dbos {version}: system database = its own SQLite file, or its own database on "
        "the PostgreSQL server; DBOS defaults (SQLite: journal and synchronous not set)"
    )


def run_dbos(bench: Bench, only: set[str]) -> None:
    """Run the selected workloads on DBOS."""
    run_workloads(bench, {"W1a": _w1a, "W1b": _w1b, "W2": _w2, "W3": _w3, "W4": _w4}, only)


def _start(bench: Bench, tag: str, url: str, args: list[str]) -> tuple[procs.Child, Path]:
    out = bench.target.work_dir / f"dbos-{tag}.json"
    child = procs.Child(
        "bench.dbos_app",
        ["--url", url, "--out", str(out), *args],
        bench.target.work_dir / f"dbos-{tag}.log",
        stdout_to_log=True,
    )
    return child, out


def _finish(child: procs.Child, out: Path, timeout_s: float) -> dict[str, Any]:
    """Wait for a DBOS process; its result, with ``peak_mib`` (its own VmHWM if it knew)."""
    info = child.wait(timeout_s)
    if info.returncode != 0 or not out.exists():
        raise BenchError(f"dbos exited with {info.returncode}: {child.log_tail()}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["peak_mib"] = result.get("peak_mib") or info.peak_mib
    return result


def _run(bench: Bench, tag: str, workload: str, size: int, *extra: str) -> dict[str, Any]:
    """One workload in a fresh DBOS process on a fresh system database; its result."""
    url = bench.target.peer_url("dbos", tag)
    child, out = _start(bench, tag, url, [workload, "--size", str(size), *extra])
    result = _finish(child, out, bench.sizes.timeout_s)
    journal = result.get("journal")
    if journal and journal not in _journals_noted:
        _journals_noted.add(journal)
        bench.report.note(f"(dbos sqlite system database: journal_mode={journal})")
    return result


_journals_noted: set[str] = set()


def _w1a(bench: Bench) -> None:
    n = bench.sizes.w1a_runs
    result = _run(bench, "w1a", "W1a", n, "--warmup", str(bench.sizes.w1a_warmup))
    latencies = result["latencies_ms"]
    bench.add("W1a", "latency median", median(latencies), "ms", size=n, better="lower")
    bench.add("W1a", "latency p99", percentile(latencies, 99), "ms", size=n, better="lower")
    bench.add_memory("W1a", [result["peak_mib"]])


def _w1b(bench: Bench) -> None:
    n = bench.sizes.w1b_workflows
    result = _run(bench, "w1b", "W1b", n)
    elapsed = result["elapsed_s"]
    bench.add("W1b", "throughput", n / elapsed, "wf/s", size=n, better="higher")
    bench.add(
        "W1b",
        "activity throughput",
        3 * n / elapsed,
        "act/s",
        size=n,
        better="higher",
    )
    bench.add_memory("W1b", [result["peak_mib"]])


def _w2(bench: Bench) -> None:
    for items in bench.sizes.w2_items:
        result = _run(bench, f"w2_{items}", "W2", items)
        bench.add(
            "W2",
            "wall time",
            result["elapsed_s"],
            "s",
            size=items,
            better="lower",
            note=f"{items + 2} steps",
        )
        bench.add_memory("W2", [result["peak_mib"]], size=items)


def _w3(bench: Bench) -> None:
    times: dict[int, float] = {}
    for steps in bench.sizes.w3_steps:
        result = _run(bench, f"w3_{steps}", "W3", steps)
        elapsed = times[steps] = result["elapsed_s"]
        bench.add("W3", "wall time", elapsed, "s", size=steps, better="lower")
        bench.add(
            "W3",
            "time per step",
            elapsed / steps * 1000,
            "ms",
            size=steps,
            better="lower",
        )
        bench.add_memory("W3", [result["peak_mib"]], size=steps)
    bench.add_w3_ratio(times)


def _w4(bench: Bench) -> None:
    """Kill the DBOS process after ~half the steps; a new one recovers the workflow."""
    from dbos import DBOSClient

    sizes = bench.sizes
    steps = sizes.w4_steps
    url = bench.target.peer_url("dbos", "w4")
    log = bench.target.work_dir / "dbos-w4-executions.log"
    workflow_id = f"w4-{uuid.uuid4().hex[:8]}"
    common = ["--size", str(steps), "--workflow-id", workflow_id, "--execution-log", str(log)]
    first, _ = _start(bench, "w4-run", url, ["W4-run", *common])
    try:
        _wait_for_lines(log, sizes.w4_kill_after + 1, sizes.timeout_s, first)
    finally:
        first_exit = first.kill()
    client = DBOSClient(system_database_url=url)
    try:
        recorded = client.list_workflow_steps(workflow_id, load_output=False)
    finally:
        client.destroy()
    done = frozenset(f"{workflow_id}:{s['function_id']}" for s in recorded)
    if len(done) >= steps:
        raise BenchError("the chain finished before the process was killed")
    spawned = time.time()
    second, out = _start(bench, "w4-recover", url, ["W4-recover", *common])
    result = _finish(second, out, sizes.timeout_s)
    outcome = RecoveryOutcome(
        done_at_kill=done,
        executions=read_executions(log),
        restart_s=result["done_at"] - spawned,
        ready_s=result["launched_at"] - spawned,
        peaks_mib=[first_exit.peak_mib, result["peak_mib"]],
    )
    report_recovery(bench, steps, outcome)


def _wait_for_lines(path: Path, lines: int, timeout_s: float, child: procs.Child) -> None:
    """Poll until the execution log has ``lines`` lines (steps started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.has_exited():
            raise BenchError(f"dbos exited early: {child.log_tail()}")
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.005)
    raise BenchError(f"{lines} steps did not run within {timeout_s} s")
