"""Measurements and how they are printed: the header, one line each, peer comparisons, JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["lower", "higher", "none"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One printed figure.

    Attributes:
        engine: ``treadle`` or a peer's name (``dbos``).
        store: ``sqlite`` or ``postgres``.
        workload: ``W1a``, ``W1b``, ``W2``, ``W3``, ``W4``.
        metric: what was measured, e.g. ``latency median``.
        value: the figure.
        unit: its unit (``ms``, ``s``, ``wf/s``, ``MiB``, ``count``, ``x``).
        size: the workload's size parameter (runs, workflows, items, steps), if any.
        workers: worker processes (treadle); None for a single-process peer.
        better: which direction is better, for comparisons.
        note: a short remark printed after the figure.
        pairs_with: the peer's metric this one is compared with, if not the same name.
    """

    engine: str
    store: str
    workload: str
    metric: str
    value: float
    unit: str
    size: int | None = None
    workers: int | None = None
    better: Better = "none"
    note: str = ""
    pairs_with: str | None = None

    @property
    def pair_key(self) -> tuple[str, str, int | None]:
        """What a peer's measurement must share with this one to be compared."""
        return (self.workload, self.pairs_with or self.metric, self.size)


@dataclass(slots=True)
class Report:
    """Collects measurements, prints each as it comes, and writes them as JSON.

    Attributes:
        header: the machine and run facts printed first.
        measurements: every measurement, in order.
        errors: workloads that failed, with why.
    """

    header: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def print_header(self) -> None:
        """Print the header facts, one per line."""
        print("treadle benchmark")
        width = max(len(k) for k in self.header)
        for key, value in self.header.items():
            print(f"  {key:<{width}}  {value}")
        print(flush=True)

    def add(self, m: Measurement) -> Measurement:
        """Record and print one measurement."""
        self.measurements.append(m)
        print(format_line(m), flush=True)
        return m

    def error(self, engine: str, store: str, workload: str, exc: BaseException) -> None:
        """Record and print a workload that failed."""
        text = f"{workload} {engine} {store}: ERROR {type(exc).__name__}: {exc}"
        self.errors.append(text)
        print(text, flush=True)

    def note(self, text: str) -> None:
        """Print a free-form line (section titles, skips)."""
        print(text, flush=True)

    def compare(self, store: str, peer: str, topology: str) -> None:
        """Print treadle and ``peer`` side by side on ``store``, pair by pair."""
        ours = [m for m in self.measurements if m.engine == "treadle" and m.store == store]
        theirs = {m.pair_key: m for m in self.measurements if m.engine == peer and m.store == store}
        pairs = []
        for m in ours:
            other = theirs.get(m.pair_key)
            if other is None or m.better == "none":
                continue
            if m.workers not in (None, 1) and _has_single_worker(ours, m):
                continue  # the peer runs in one process: compare with one treadle worker
            pairs.append((m, other))
        if not pairs:
            return
        print(f"\ntreadle vs {peer} on {store} ({topology})", flush=True)
        for m, other in pairs:
            print(format_pair(m, other, peer), flush=True)
        print(flush=True)

    def write_json(self, path: Path) -> None:
        """Write the header, measurements and errors to ``path``."""
        data = {
            "header": self.header,
            "measurements": [asdict(m) for m in self.measurements],
            "errors": self.errors,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


def _has_single_worker(ours: Sequence[Measurement], m: Measurement) -> bool:
    return any(o.pair_key == m.pair_key and o.workers in (None, 1) for o in ours)


def format_value(value: float) -> str:
    """A figure with as many decimals as its size deserves."""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_line(m: Measurement) -> str:
    """The one printed line of a measurement."""
    where = f"{m.engine} {m.store}" + (f" w={m.workers}" if m.workers is not None else "")
    if m.unit == "x":
        return f"{m.workload} {m.metric} = {m.value:.2f} ({m.note}) [{where}]"
    size = f"n={m.size}" if m.size is not None else ""
    note = f"  {m.note}" if m.note else ""
    return (
        f"{m.workload:<4} {where:<22} {m.metric:<32} {size:<8} "
        f"{format_value(m.value):>10} {m.unit}{note}"
    )


def format_pair(m: Measurement, other: Measurement, peer: str) -> str:
    """treadle's and the peer's figure, their ratio, and who is better by how much."""
    ratio = _ratio(m.value, other.value)
    factor = _ratio(other.value, m.value) if m.better == "lower" else ratio
    if m.value == other.value:
        ratio, verdict = 1.0, "the same"
    elif factor >= 1:
        verdict = f"treadle {factor:.2f}x better"
    elif factor > 0:
        verdict = f"treadle {1 / factor:.2f}x worse"
    else:
        verdict = "n/a"
    size = f"n={m.size}" if m.size is not None else ""
    return (
        f"{m.workload:<4} {m.metric:<32} {size:<8} treadle {format_value(m.value):>9} {m.unit:<5}"
        f" {peer} {format_value(other.value):>9} {other.unit:<5}"
        f" treadle/{peer} = {ratio:.2f}  ({m.better} is better: {verdict})"
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values`` (``pct`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def size_label(n: int) -> str:
    """``10000`` -> ``10k``, ``1000`` -> ``1k``, ``400`` -> ``400``."""
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def machine_facts() -> dict[str, str]:
    """CPU, Python, treadle and SQLite facts for the header."""
    import treadle

    cpus = os.cpu_count() or 0
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    facts = {
        "cpus": f"{cpus} logical ({affinity} usable) {_cpu_model()}".rstrip(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "treadle": treadle.__version__,
        "sqlite": sqlite3.sqlite_version,
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (1/5/15 min, at start: other work on the machine skews the figures)",
        "peak RSS": "VmHWM of each worker process, read just before it is stopped",
    }
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
