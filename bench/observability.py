"""``python -m bench --observability N``: W1b and W3 with the runtime's metrics and traces off
and on (on: Prometheus metrics, and OpenTelemetry spans through the SDK's batch processor to
an exporter that drops them; see :func:`bench.app.traced_provider`).

The runs alternate (off, on, then on, off, ...) for N rounds, so drift on a shared machine
falls on both sides; the medians of each figure are compared as a ratio (on / off, so 0.95
means 5% fewer workflows per second, or 5% more time per step where lower is better). The
workers read :data:`ENV` (see :func:`bench.app.build_runtime`).

A worker's CPU per step includes its start-up, which weighs on small sizes; the marginal
figure leaves it out: the CPU of the largest size less that of the smallest, per step between
them (:func:`marginal_cpu_ratios`). ``python -m bench.metrics_cost`` counts the same under
callgrind, independent of the machine's load.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from bench.report import Measurement, Report
from bench.stores import StoreTarget
from bench.workloads import (
    Bench,
    Sizes,
    Workload,
    run_workloads,
    w1b_throughput,
    w3_long_chain,
)

ENV = "TREADLE_BENCH_OBSERVABILITY"
"""``1``: the benchmark's runtimes keep Prometheus metrics and emit spans (``metrics``: keep
metrics only; ``traces``: spans only; ``sampled``: metrics, and spans of one trace in ten)."""

WORKLOADS: dict[str, Workload] = {"W1b": w1b_throughput, "W3": w3_long_chain}

Key = tuple[str, str, int | None, int | None, str]


def run_ab(
    target: StoreTarget, sizes: Sizes, workers: Sequence[int], rounds: int, report: Report
) -> None:
    """Run the A/B on ``target`` and add one ratio per figure to ``report``."""
    figures: dict[Key, dict[str, list[float]]] = {}
    before = os.environ.get(ENV)
    try:
        for i in range(rounds):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                os.environ[ENV] = "1" if mode == "on" else "0"
                report.note(
                    f"-- observability A/B: round {i + 1}/{rounds}, metrics+traces {mode} --"
                )
                sub = Report(header={})
                bench = Bench("treadle", target, sub, sizes, workers)
                run_workloads(bench, WORKLOADS, set(WORKLOADS))
                report.errors.extend(sub.errors)
                for m in sub.measurements:
                    if m.better in ("higher", "lower"):
                        key = (m.workload, m.metric, m.size, m.workers, m.better)
                        figures.setdefault(key, {}).setdefault(mode, []).append(m.value)
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
    marginal_cpu_ratios(figures, target, report)
    for (workload, metric, size, count, better), modes in figures.items():
        off, on = modes.get("off", []), modes.get("on", [])
        if not off or not on:
            continue
        off_m, on_m = statistics.median(off), statistics.median(on)
        ratio = on_m / off_m if off_m else float("nan")
        report.add(
            Measurement(
                "treadle",
                target.kind,
                workload,
                f"{metric}, metrics+traces on / off",
                ratio,
                "x",
                size=size,
                workers=count,
                note=f"medians off {off_m:.4g}, on {on_m:.4g} over {len(off)} runs each "
                f"({better} is better)",
            )
        )


def marginal_cpu_ratios(
    figures: dict[Key, dict[str, list[float]]], target: StoreTarget, report: Report
) -> None:
    """Add, per workload, the ratio (on / off) of the worker CPU per step between its smallest
    and largest sizes, start-up left out: ``(cpu(n2) * n2 - cpu(n1) * n1) / (n2 - n1)`` from
    the medians of each size."""
    by_workload: dict[tuple[str, int | None], dict[int, dict[str, list[float]]]] = {}
    for (workload, metric, size, count, _), modes in figures.items():
        if metric == "worker CPU per step" and size is not None:
            by_workload.setdefault((workload, count), {})[size] = modes
    for (workload, count), sizes in sorted(by_workload.items()):
        if len(sizes) < 2:
            continue
        n1, n2 = min(sizes), max(sizes)
        marginal: dict[str, float] = {}
        for mode in ("off", "on"):
            small, large = sizes[n1].get(mode), sizes[n2].get(mode)
            if small and large:
                cpu1, cpu2 = statistics.median(small), statistics.median(large)
                marginal[mode] = (cpu2 * n2 - cpu1 * n1) / (n2 - n1)
        if len(marginal) < 2 or not marginal["off"]:
            continue
        report.add(
            Measurement(
                "treadle",
                target.kind,
                workload,
                f"marginal worker CPU per step (n={n1}..{n2}), metrics+traces on / off",
                marginal["on"] / marginal["off"],
                "x",
                workers=count,
                note=f"off {marginal['off']:.4g} ms, on {marginal['on']:.4g} ms per step, "
                "start-up left out (lower is better; target <= 1.10)",
            )
        )
