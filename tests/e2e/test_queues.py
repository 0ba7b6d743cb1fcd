"""Queue limits with several worker processes: the activities themselves see the limit held,
and the work goes at close to the limit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import treadle as wf

SCRIPT = Path(__file__).parent / "queue_scripts" / "worker.py"
ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3


def _read(log: Path) -> list[tuple[str, float]]:
    out = []
    for line in log.read_text().splitlines():
        kind, at, _, _ = line.split()
        out.append((kind, float(at)))
    return out


def _peak(events: list[tuple[str, float]]) -> int:
    running = peak = 0
    for kind, _ in sorted(events, key=lambda e: (e[1], e[0] == "start")):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return peak


def _run(
    store_url: str,
    tmp_path: Path,
    spawn: Callable[..., subprocess.Popen[str]],
    mode: str,
    n: int,
    *,
    separate: bool = False,
) -> list[tuple[str, float]]:
    log = tmp_path / "activities.log"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        spawn(SCRIPT, store_url, str(log), mode, stdout=subprocess.PIPE, env=env)
        for _ in range(WORKERS)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    with wf.WorkflowClient(store_url) as client:
        if separate:  # n instances of `one`
            ids = [client.schedule_new_workflow("one", input=i) for i in range(n)]
        else:
            ids = [client.schedule_new_workflow("fan_out", input=n)]
        for iid in ids:
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=90)
            assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    if not separate:
        assert state is not None and state.serialized_output == str(sum(range(n)))
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    return _read(log)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_concurrency_limit_holds_across_worker_processes(
    store_url: str, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    events = _run(store_url, tmp_path, spawn, "concurrency", 30)
    peak = _peak(events)
    assert peak == 3, peak  # reached, never exceeded (3 workers could run 24 at once)
    starts = sorted(t for k, t in events if k == "start")
    ends = sorted(t for k, t in events if k == "end")
    assert len(starts) == 30
    elapsed = ends[-1] - starts[0]
    ideal = 30 * 0.1 / 3
    print(f"concurrency 3: 30 x 0.1 s in {elapsed:.2f} s (at the limit: {ideal:.2f} s)")
    assert elapsed < ideal * 2.5, elapsed  # close to the limit (a loaded machine is slower)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_rate_limit_holds_across_worker_processes(
    store_url: str, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    log = tmp_path / "activities.log"
    events = _run(store_url, tmp_path, spawn, "rate", 35)
    starts = sorted(t for k, t in events if k == "start")
    assert len(starts) == 35
    # The limit is on the store's claims. Each claim's time, as the store stamped it, lies
    # between the BEFORE and AFTER its worker logged around the call: eleven claims whose
    # interval from the first's BEFORE to the eleventh's AFTER is shorter than the period
    # were certainly stamped within one period, which the limit forbids. (The activities'
    # own start times come later than their claims, by more on a busy machine, so they
    # cannot show it.)
    claims = sorted(
        (float(before), float(after))
        for kind, before, after, _ in (line.split() for line in log.read_text().splitlines())
        if kind == "claim"
    )
    assert len(claims) == 35, len(claims)  # every start was claimed through the queue
    for i in range(len(claims) - 10):
        first_before = claims[i][0]
        eleventh_after = sorted(after for _, after in claims[i:])[10]
        assert eleventh_after - first_before >= 1.0 - 1e-3, (i, claims[i : i + 11])
    # 35 claims at 10 a second: the last is at least 3 periods after the first
    span = max(after for _, after in claims) - claims[0][0]
    elapsed = starts[-1] - starts[0]
    print(f"rate 10/s: 35 claims over {span:.2f} s, starts over {elapsed:.2f} s (limit: 3.00 s)")
    assert span >= 3.0 - 1e-3, span
    assert elapsed < 3.0 * 2, elapsed  # and close to the limit (a loaded machine is slower)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_workflow_concurrency_limit_holds_across_worker_processes(
    store_url: str, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    events = _run(store_url, tmp_path, spawn, "workflows", 12, separate=True)
    # each instance runs its one activity while it runs: at most 2 overlap, and 2 do
    assert _peak(events) == 2, events
    starts = sorted(t for k, t in events if k == "start")
    ends = sorted(t for k, t in events if k == "end")
    elapsed = ends[-1] - starts[0]
    # each start after the first two follows the end that freed its slot: the hand-over
    gaps = sorted(s - e for s, e in zip(starts[2:], ends, strict=False))
    print(
        f"workflow concurrency 2: 12 x 0.1 s in {elapsed:.2f} s (at the limit: 0.60 s); "
        f"hand-over from an end to the next start: median {gaps[len(gaps) // 2] * 1000:.0f} ms"
    )
    assert elapsed < 0.6 * 3, elapsed
