"""The treadle workloads W1-W4: the driver starts workflows and waits; workers run them.

Every workload gets a fresh store and fresh worker processes (``python -m bench.worker``),
so each one's peak RSS is its own. Times are wall-clock, from the first schedule to the
last completion, measured in the driver.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import treadle as wf
from bench import app, procs
from bench.report import Better, Measurement, Report, median, percentile, size_label
from bench.stores import StoreTarget
from treadle.core.history import TaskCompleted

W3_RATIO_TARGET_PER_10X = 12.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each workload is.

    Attributes:
        w1a_runs: sequential workflows timed one by one (after ``w1a_warmup`` untimed ones).
        w1b_workflows: workflows started at once.
        w2_items: fan-out widths.
        w3_steps: chain lengths; the ratio is last/first.
        sdk_w3_steps: chain lengths through an SDK (which replays the whole history at
            every step, so its cost grows with the square of the length).
        w4_steps: the chain that is interrupted.
        w4_kill_after: completed steps after which the worker is killed.
        timeout_s: how long any single wait may take before the workload fails.
    """

    w1a_runs: int
    w1a_warmup: int
    w1b_workflows: int
    w2_items: tuple[int, ...]
    w3_steps: tuple[int, ...]
    sdk_w3_steps: tuple[int, ...]
    w4_steps: int
    w4_kill_after: int
    timeout_s: float

    @classmethod
    def full(cls) -> Sizes:
        """The default sizes."""
        return cls(
            200, 10, 2000, (100, 1000), (1000, 2000, 4000, 10_000), (300, 1000), 2000, 1000, 900.0
        )

    @classmethod
    def quick(cls) -> Sizes:
        """Small sizes for a CI smoke run."""
        return cls(20, 3, 200, (100,), (100, 200, 400, 1000), (50,), 200, 100, 120.0)


class BenchError(RuntimeError):
    """A workload did not produce what it should have."""


@dataclass(slots=True)
class Bench:
    """What the workloads of one engine on one store share.

    Attributes:
        engine: ``treadle`` or a peer's name.
        target: the store target.
        report: where measurements go.
        sizes: workload sizes.
        workers: worker counts for the throughput workloads (W1b, W2).
        profile_dir: where to write py-spy profiles of the workers, if profiling.
        in_process: the engine runs in the process that starts the workflows (a peer).
        last_scheduling_s: how long the starts of the last throughput run took alone.
        last_cpu_s: the CPU time of the worker processes and of the driver in the last run.
    """

    engine: str
    target: StoreTarget
    report: Report
    sizes: Sizes
    workers: Sequence[int] = (1,)
    profile_dir: Path | None = None
    in_process: bool = False
    last_scheduling_s: float = 0.0
    last_cpu_s: tuple[float, float] = (0.0, 0.0)

    def add(
        self,
        workload: str,
        metric: str,
        value: float,
        unit: str,
        *,
        size: int | None = None,
        workers: int | None = 1,
        better: Better = "none",
        note: str = "",
        pairs_with: str | None = None,
    ) -> Measurement:
        """Record one measurement of this engine on this store (no worker count in-process)."""
        if self.in_process:
            workers = None
        return self.report.add(
            Measurement(
                self.engine,
                self.target.kind,
                workload,
                metric,
                value,
                unit,
                size,
                workers,
                better,
                note,
                pairs_with,
            )
        )

    def add_memory(
        self,
        workload: str,
        peaks_mib: Sequence[float],
        *,
        size: int | None = None,
        concurrent: bool = True,
    ) -> None:
        """Record the peak RSS of the worker processes of one workload run.

        Args:
            concurrent: the processes ran side by side (else one after the other).
        """
        note = ""
        if len(peaks_mib) > 1:
            note = "max of " + ", ".join(f"{p:.0f}" for p in peaks_mib)
        self.add(
            workload,
            "peak RSS per worker",
            max(peaks_mib),
            "MiB",
            size=size,
            workers=len(peaks_mib) if concurrent else 1,
            better="lower",
            note=note,
        )

    def add_w3_ratio(self, times_s: dict[int, float]) -> None:
        """Print time(longest)/time(shortest) of W3 against its target."""
        first, last = min(times_s), max(times_s)
        if first == last:
            return
        ratio = times_s[last] / times_s[first]
        target = W3_RATIO_TARGET_PER_10X * (last / first) / 10
        verdict = "ok" if ratio < target else "OVER TARGET"
        self.add(
            "W3",
            f"ratio {size_label(last)}/{size_label(first)}",
            ratio,
            "x",
            better="lower",
            note=f"target < {target:g}: {verdict}",
        )
        floors = [
            m.value
            for m in self.report.measurements
            if m.engine == "disk" and m.store == self.target.kind
        ]
        if floors:
            per_step_ms = times_s[last] / last * 1e3
            self.add(
                "W3",
                "time per step / one-row commit",
                per_step_ms / floors[-1],
                "x",
                size=last,
                better="lower",
                note=f"{per_step_ms:.3f} ms per step, {floors[-1]:.3f} ms per one-row commit",
            )


Workload = Callable[[Bench], None]


def run_workloads(bench: Bench, workloads: dict[str, Workload], only: set[str]) -> None:
    """Run the ``only`` ones of ``workloads`` in order; a failing one is reported, skipped."""
    for name, workload in workloads.items():
        if name not in only:
            continue
        try:
            workload(bench)
        except Exception as exc:
            bench.report.error(bench.engine, bench.target.kind, name, exc)


def run_treadle(bench: Bench, only: set[str]) -> None:
    """Run the selected treadle workloads."""
    run_workloads(bench, TREADLE_WORKLOADS, only)


# ---- helpers ---------------------------------------------------------------------------


def _check(state: wf.WorkflowState | None, expected: Any, what: str) -> None:
    if state is None:
        raise BenchError(f"{what}: the instance vanished")
    if state.runtime_status is not wf.WorkflowStatus.COMPLETED:
        raise BenchError(f"{what}: {state.runtime_status.name}: {state.failure_details}")
    output = json.loads(state.serialized_output or "null")
    if output != expected:
        raise BenchError(f"{what}: output {output!r}, expected {expected!r}")


def _wait_all(
    client: wf.WorkflowClient, ids: Sequence[str], expected: Sequence[Any], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    for iid, want in zip(ids, expected, strict=True):
        remaining = max(0.001, deadline - time.monotonic())
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=remaining)
        _check(state, want, f"workflow {iid}")


def _peaks(children: Sequence[procs.Child]) -> list[float]:
    return [c.exit.peak_mib for c in children if c.exit is not None]


def start_and_wait(
    client: wf.WorkflowClient,
    workflow: str,
    inputs: Sequence[Any],
    expected: Sequence[Any],
    timeout_s: float,
) -> tuple[float, float]:
    """Start ``workflow`` once per input, one after the other, then wait for all.

    Returns:
        the seconds from the first start to the last completion, and those the starts
        alone took (one client, a durable commit each).

    Raises:
        BenchError: a workflow did not return what it should.
    """
    start = time.perf_counter()
    ids = [client.schedule_new_workflow(workflow, input=x) for x in inputs]
    scheduling_s = time.perf_counter() - start
    _wait_all(client, ids, expected, timeout_s)
    return time.perf_counter() - start, scheduling_s


def _run_one(
    bench: Bench, tag: str, workers: int, workflow: str, inputs: Sequence[Any], expected: list[Any]
) -> tuple[float, list[float]]:
    """Start ``workflow`` once per input on a fresh store, wait for all; (seconds, peaks).

    The seconds the starts alone took (one client, one durable commit each) are kept in
    ``bench.last_scheduling_s``.
    """
    url = bench.target.new_url(tag)
    with (
        wf.WorkflowClient(url) as client,
        procs.workers(
            workers, url, bench.target.work_dir, tag, profile_dir=bench.profile_dir
        ) as children,
    ):
        before = _cpu(children)
        elapsed, bench.last_scheduling_s = start_and_wait(
            client, workflow, inputs, expected, bench.sizes.timeout_s
        )
        after = _cpu(children)
        bench.last_cpu_s = (after[0] - before[0], after[1] - before[1])
    return elapsed, _peaks(children)


def _cpu(children: Sequence[procs.Child]) -> tuple[float, float]:
    """CPU seconds so far of the worker processes together, and of this process."""
    return sum(procs.cpu_seconds(c.pid) for c in children), time.process_time()


def add_cpu_per_step(bench: Bench, workload: str, steps: int, size: int, workers: int) -> None:
    """Print the last run's CPU per step (activity) of the workers and of the driver."""
    worker_s, driver_s = bench.last_cpu_s
    bench.add(
        workload,
        "worker CPU per step",
        worker_s / steps * 1e3,
        "ms",
        size=size,
        workers=workers,
        better="lower",
        note=f"driver (client) {driver_s / steps * 1e3:.3f} ms per step",
    )


def run_one_process(bench: Bench, workload: str, tag: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m bench.inproc --workload workload`` (runtime and client in one process)
    on a fresh store; its JSON result, with ``peak_mib`` (its own VmHWM if it knew).

    Raises:
        BenchError: the process failed.
    """
    timeout_s = bench.sizes.timeout_s
    url = bench.target.new_url(tag)
    out = bench.target.work_dir / f"{tag}.json"
    common = ["--workload", workload, "--url", url, "--out", str(out), "--timeout", str(timeout_s)]
    child = procs.Child(
        "bench.inproc",
        [*common, *args],
        bench.target.work_dir / f"{tag}.log",
        stdout_to_log=True,
    )
    if bench.profile_dir is not None:
        child.profile(bench.profile_dir / f"{tag}.txt")
    info = child.wait(timeout_s * 2)
    if info.returncode != 0 or not out.exists():
        raise BenchError(f"bench.inproc exited with {info.returncode}: {child.log_tail()}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["peak_mib"] = result.get("peak_mib") or info.peak_mib
    return result


# ---- W1: the task chain -----------------------------------------------------------------


def time_task_chains(
    client: wf.WorkflowClient, runs: int, warmup: int, timeout_s: float
) -> list[float]:
    """Start task chains one at a time and wait for each; the latencies (ms) of the ``runs``
    after ``warmup`` untimed ones.

    Raises:
        BenchError: a chain did not return what it should.
    """
    latencies_ms: list[float] = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        iid = client.schedule_new_workflow(app.task_chain, input=i)
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=timeout_s)
        if i >= warmup:
            latencies_ms.append((time.perf_counter() - start) * 1000)
        _check(state, app.task_chain_result(i), f"task_chain({i})")
    return latencies_ms


def w1a_latency(bench: Bench) -> None:
    """W1a: one task chain at a time, schedule then wait; median and p99 latency."""
    sizes = bench.sizes
    url = bench.target.new_url("w1a")
    with (
        wf.WorkflowClient(url) as client,
        procs.workers(1, url, bench.target.work_dir, "w1a", profile_dir=bench.profile_dir) as ch,
    ):
        before = _cpu(ch)
        latencies_ms = time_task_chains(client, sizes.w1a_runs, sizes.w1a_warmup, sizes.timeout_s)
        after = _cpu(ch)
        bench.last_cpu_s = (after[0] - before[0], after[1] - before[1])
    n = sizes.w1a_runs
    bench.add("W1a", "latency median", median(latencies_ms), "ms", size=n, better="lower")
    bench.add("W1a", "latency p99", percentile(latencies_ms, 99), "ms", size=n, better="lower")
    add_cpu_per_step(bench, "W1a", 3 * (n + sizes.w1a_warmup), n, 1)
    bench.add_memory("W1a", _peaks(ch))
    w1a_one_process(bench)


def w1a_one_process(bench: Bench) -> None:
    """W1a with the runtime and the client in one process (``bench.inproc``), as the seed
    runs them and as DBOS always runs: compared with the peer's W1a too."""
    sizes = bench.sizes
    args = ["--size", str(sizes.w1a_runs), "--warmup", str(sizes.w1a_warmup)]
    result = run_one_process(bench, "W1a", "w1a_one", args)
    latencies_ms = result["latencies_ms"]
    n = sizes.w1a_runs
    for metric, value in (
        ("latency median", median(latencies_ms)),
        ("latency p99", percentile(latencies_ms, 99)),
    ):
        bench.add(
            "W1a",
            f"{metric}, one process",
            value,
            "ms",
            size=n,
            workers=None,
            better="lower",
            note="runtime and client in one process; a start takes its first turn along",
            pairs_with=metric,
        )
    bench.add(
        "W1a",
        "peak RSS, one process",
        result["peak_mib"],
        "MiB",
        workers=None,
        better="lower",
        pairs_with="peak RSS per worker",
    )


def w1b_throughput(bench: Bench) -> None:
    """W1b: start many task chains at once, wait for all; workflows/s and activities/s."""
    n = bench.sizes.w1b_workflows
    base: float | None = None
    for count in bench.workers:
        elapsed, peaks = _run_one(
            bench,
            f"w1b_{count}w",
            count,
            "task_chain",
            range(n),
            [app.task_chain_result(i) for i in range(n)],
        )
        rate = n / elapsed
        note = (
            f"the {n:,} starts alone took {bench.last_scheduling_s:.2f} s "
            "(one client, a durable commit each)"
        )
        if base is None:
            base = rate
        else:
            note += f"; scaling: {rate / base:.2f}x the first worker count's rate"
        bench.add(
            "W1b", "throughput", rate, "wf/s", size=n, workers=count, better="higher", note=note
        )
        bench.add(
            "W1b",
            "activity throughput",
            3 * n / elapsed,
            "act/s",
            size=n,
            workers=count,
            better="higher",
        )
        add_cpu_per_step(bench, "W1b", 3 * n, n, count)
        bench.add_memory("W1b", peaks)
    w1b_one_process(bench)


def w1b_one_process(bench: Bench) -> None:
    """W1b with the runtime and the client in one process (``bench.inproc``), as the README's
    first example and most embedded applications run: each start is taken by the runtime
    with its first turn. Compared with the peer's W1b too."""
    n = bench.sizes.w1b_workflows
    result = run_one_process(bench, "W1b", "w1b_one", ["--size", str(n)])
    elapsed = float(result["elapsed_s"])
    note = "runtime and client in one process; a start takes its first turn along"
    bench.add(
        "W1b",
        "throughput, one process",
        n / elapsed,
        "wf/s",
        size=n,
        workers=None,
        better="higher",
        note=f"{note}; the {n:,} starts alone took {result['scheduling_s']:.2f} s",
        pairs_with="throughput",
    )
    bench.add(
        "W1b",
        "activity throughput, one process",
        3 * n / elapsed,
        "act/s",
        size=n,
        workers=None,
        better="higher",
        pairs_with="activity throughput",
    )
    bench.add(
        "W1b",
        "peak RSS, one process",
        result["peak_mib"],
        "MiB",
        workers=None,
        better="lower",
        pairs_with="peak RSS per worker",
    )


# ---- W2: fan-out/fan-in -----------------------------------------------------------------


def w2_fan_out(bench: Bench) -> None:
    """W2: one fan-out/fan-in workflow per width; wall time."""
    for items in bench.sizes.w2_items:
        base: float | None = None
        for count in bench.workers:
            elapsed, peaks = _run_one(
                bench,
                f"w2_{items}_{count}w",
                count,
                "batch_processing",
                [items],
                [app.batch_processing_result(items)],
            )
            bench.add(
                "W2",
                "wall time",
                elapsed,
                "s",
                size=items,
                workers=count,
                better="lower",
                note=f"{items + 2} activities"
                + ("" if base is None else f"; scaling: {base / elapsed:.2f}x (speed-up)"),
            )
            base = elapsed if base is None else base
            bench.add_memory("W2", peaks, size=items)


# ---- W3: long chains --------------------------------------------------------------------


def w3_long_chain(bench: Bench) -> None:
    """W3: one workflow of N sequential steps per N; wall time, ms/step, and the ratio."""
    times: dict[int, float] = {}
    for steps in bench.sizes.w3_steps:
        elapsed, peaks = _run_one(bench, f"w3_{steps}", 1, "long_chain", [steps], [steps])
        times[steps] = elapsed
        bench.add("W3", "wall time", elapsed, "s", size=steps, better="lower")
        bench.add("W3", "time per step", elapsed / steps * 1000, "ms", size=steps, better="lower")
        add_cpu_per_step(bench, "W3", steps, steps, 1)
        bench.add_memory("W3", peaks, size=steps)
    bench.add_w3_ratio(times)


# ---- W4: recovery -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """What W4 measured, whatever the engine.

    Attributes:
        done_at_kill: ids of the steps whose completion was recorded when the worker died.
        executions: how often each step id was executed (lines in the execution log).
        restart_s: from starting the new worker to the workflow's completion.
        ready_s: of which the new worker's start-up (until it was ready).
        peaks_mib: the peak RSS of the killed worker and of the new one.
    """

    done_at_kill: frozenset[str]
    executions: Counter[str]
    restart_s: float
    ready_s: float
    peaks_mib: list[float]


def report_recovery(bench: Bench, steps: int, outcome: RecoveryOutcome) -> None:
    """Print W4's figures (shared by treadle and peers)."""
    done = len(outcome.done_at_kill)
    remaining = steps - done
    rerun = sum(outcome.executions[i] - 1 for i in outcome.done_at_kill if outcome.executions[i])
    in_flight = sum(
        n - 1 for i, n in outcome.executions.items() if n > 1 and i not in outcome.done_at_kill
    )
    bench.add("W4", "steps recorded at SIGKILL", done, "steps", size=steps)
    bench.add(
        "W4",
        "recovery: restart to done",
        outcome.restart_s,
        "s",
        size=steps,
        better="lower",
        note=f"{remaining} steps left; worker start-up {outcome.ready_s:.2f} s of it",
    )
    bench.add(
        "W4",
        "recovery: worker ready to done",
        outcome.restart_s - outcome.ready_s,
        "s",
        size=steps,
        better="lower",
        note=f"replay of {done} recorded steps and {remaining} steps run",
    )
    bench.add(
        "W4",
        "recovery: time per step left",
        outcome.restart_s / max(1, remaining) * 1000,
        "ms",
        size=steps,
        better="lower",
    )
    bench.add(
        "W4",
        "re-executions of recorded steps",
        rerun,
        "count",
        size=steps,
        better="lower",
        note=f"in-flight steps run again (allowed): {in_flight}",
    )
    bench.add_memory("W4", outcome.peaks_mib, size=steps, concurrent=False)


def read_executions(path: Path) -> Counter[str]:
    """Count the lines of an execution log (one id per execution)."""
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text().splitlines() if line)


def w4_recovery(bench: Bench) -> None:
    """W4: SIGKILL the worker of a long chain half-way, restart, and measure the recovery."""
    sizes = bench.sizes
    steps = sizes.w4_steps
    url = bench.target.new_url("w4")
    work = bench.target.work_dir
    log = work / "w4-executions.log"
    extra = ["--store", url, "--execution-log", str(log)]
    with wf.WorkflowClient(url) as client:
        first = procs.Child("bench.worker", extra, work / "w4-first.log")
        try:
            first.wait_ready()
            iid = client.schedule_new_workflow("recovery_chain", input=steps)
            _wait_for_steps(client, iid, sizes.w4_kill_after, sizes.timeout_s)
        finally:
            first.kill()
        history = client.get_workflow_history(iid)
        done = frozenset(e.task_execution_id for e in history if isinstance(e, TaskCompleted))
        if len(done) >= steps:
            raise BenchError("the chain finished before the worker was killed")
        start = time.perf_counter()
        second = procs.Child("bench.worker", extra, work / "w4-second.log")
        try:
            second.wait_ready()
            ready = time.perf_counter() - start
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=sizes.timeout_s)
            restart = time.perf_counter() - start
            _check(state, steps, "recovery_chain")
        finally:
            second.stop()
    peaks = [c.exit.peak_mib for c in (first, second) if c.exit is not None]
    report_recovery(
        bench, steps, RecoveryOutcome(done, read_executions(log), restart, ready, peaks)
    )


def _wait_for_steps(client: wf.WorkflowClient, iid: str, steps: int, timeout_s: float) -> None:
    """Poll the history length until about ``steps`` steps are recorded.

    Reading the whole history on every poll would take longer than a step, so it is read
    once, early, to learn how many events a step adds; then only the length is polled.
    """
    deadline = time.monotonic() + timeout_s
    events_per_step: float | None = None
    while time.monotonic() < deadline:
        record = client.store.get_instance(iid)
        length = record.history_len if record is not None else 0
        if events_per_step is None and length >= 2 * min(steps, 50):
            history = client.get_workflow_history(iid)
            done = sum(isinstance(e, TaskCompleted) for e in history)
            if done:
                events_per_step = len(history) / done
        if events_per_step is not None and length >= events_per_step * steps:
            return
        time.sleep(0.002)
    raise BenchError(f"{steps} steps were not recorded within {timeout_s} s")


TREADLE_WORKLOADS: dict[str, Workload] = {
    "W1a": w1a_latency,
    "W1b": w1b_throughput,
    "W2": w2_fan_out,
    "W3": w3_long_chain,
    "W4": w4_recovery,
}
