"""``python -m bench.ab A B [--rounds N] [--out FILE] -- BENCH-OPTIONS``: an interleaved A/B of
two versions of treadle in one sitting.

``A`` and ``B`` are source trees (directories holding ``treadle/`` and ``bench/``) or git
revisions of the repository this runs in (each is exported with ``git archive`` into a
temporary directory). Each round runs ``python -m bench BENCH-OPTIONS`` once from ``A`` and
once from ``B`` (alternating, so a change in the machine's load falls on both; and in turns,
A first then B first, because the second run of a pair is slower: the same tree against
itself, always second, measured 4% more time a W3 step at p = 0.02 over 9 rounds), each with
its own tree first on ``PYTHONPATH`` and its own ``bench`` package. Every line a run prints is
echoed with its side's label; at the end a summary gives, per figure, the median of each side,
the ratio B/A, the p-value of a rank-sum (Mann-Whitney) permutation test (how often splitting
the pooled values at random puts them at least as far apart: exact over every split when there
are few, else 10,000 random ones with a fixed seed) and a verdict: ``same`` within
``--threshold``; beyond it ``better`` or ``WORSE`` when p < 0.05, else ``unclear`` (the values
overlap too much for the difference to be told from the machine's noise: run more rounds).
Memory figures are listed but not judged, and so are quotients (unit ``x``: W3's ratio of
its longest to its shortest chain, its time per step over the disk's one-row commit), each
made of figures judged on their own lines or of the disk's floor, which is the machine's:
a quotient moves when either part does (a faster short chain makes the ratio "worse"), so
judging it would count one difference twice or blame the disk on treadle. Every value is
shown. The load average is printed at
the start of each run: a loaded machine makes wall-clock figures meaningless, so look at it
first.

Both trees are compiled to bytecode before the first run (``--no-compile`` to skip), so that
a worker process starts as it would from an installed package, whatever
``PYTHONDONTWRITEBYTECODE`` says.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# the fields that name a figure (Measurement in bench.report) across the two sides
KEY_FIELDS = ("store", "workload", "metric", "size", "workers")


@dataclass
class Figure:
    """One figure's values on each side."""

    unit: str
    better: str
    values: dict[str, list[float]] = field(default_factory=lambda: {"A": [], "B": []})


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The command line: A/B options before ``--``, the bench's own options after it."""
    args = list(sys.argv[1:] if argv is None else argv)
    bench_args: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, bench_args = args[:cut], args[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab",
        description="Interleaved A/B of `python -m bench` between two trees or git revisions.",
        epilog="Example: python -m bench.ab 9a2afa2 . --rounds 2 -- --store both --only W1,W3",
    )
    parser.add_argument("a", help="side A: a source tree or a git revision (the old one)")
    parser.add_argument("b", help="side B: a source tree or a git revision (the new one)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (default 2)")
    parser.add_argument("--out", type=Path, help="also write the echo and the summary here")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="do not compile each tree to bytecode first (see the module)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.05,
        help="relative difference below which a figure is 'same' (default 0.05)",
    )
    parsed = parser.parse_args(args)
    if parsed.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {parsed.rounds}")
    return parsed, bench_args


@contextmanager
def source_tree(spec: str) -> Iterator[Path]:
    """The tree ``spec`` names: a directory as it is, or a git revision exported to a temporary
    directory that is removed afterwards."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "treadle").is_dir() or not (path / "bench").is_dir():
            raise SystemExit(f"{spec}: not a treadle source tree (no treadle/ and bench/ in it)")
        yield path.resolve()
        return
    check = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"{spec}: neither a directory nor a git revision of {REPO}")
    with tempfile.TemporaryDirectory(prefix="treadle-ab-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", spec], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp)


def compile_tree(tree: Path) -> None:
    """Write the bytecode caches of ``tree``'s ``treadle`` and ``bench`` packages, as ``pip
    install`` does for an installed package: a worker process then starts by reading them.
    Without them (a checkout run with ``PYTHONDONTWRITEBYTECODE=1``) every worker start
    compiles the source it imports, which measures the size of the source, not the code."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            str(tree / "treadle"),
            str(tree / "bench"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_side(label: str, tree: Path, bench_args: list[str], echo: list[str]) -> dict[str, Any]:
    """Run the bench of ``tree`` once, echoing its lines with ``label``; return its JSON."""
    with tempfile.TemporaryDirectory(prefix="treadle-ab-json-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=str(tree))
        command = [sys.executable, "-m", "bench", *bench_args, "--json", str(out)]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        say(echo, f"=== {label} ({time.strftime('%H:%M:%S')}, load {load}) {tree}")
        proc = subprocess.Popen(
            command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            say(echo, f"{label} {line.rstrip()}")
        if proc.wait() != 0:
            raise SystemExit(f"the bench of side {label} ({tree}) exited with {proc.returncode}")
        if not out.exists():
            raise SystemExit(f"the bench of side {label} ({tree}) wrote no JSON")
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def round_order(round_: int) -> tuple[str, str]:
    """The order of the two sides in round ``round_`` (from 0): A first in even rounds, B
    first in odd ones, so that whatever the run before leaves behind (the disk writing back
    and discarding its files, its processes' exit) falls on each side equally often."""
    return ("A", "B") if round_ % 2 == 0 else ("B", "A")


def say(echo: list[str], line: str) -> None:
    """Print ``line`` now and keep it for ``--out``."""
    print(line, flush=True)
    echo.append(line)


def collect(results: dict[str, list[dict[str, Any]]]) -> dict[tuple[Any, ...], Figure]:
    """Every treadle figure (and the disk's floor) of both sides, keyed by what names it, in
    first-seen order."""
    figures: dict[tuple[Any, ...], Figure] = {}
    for side, runs in results.items():
        for run in runs:
            for m in run.get("measurements", []):
                if m.get("engine") not in ("treadle", "disk"):  # a peer's figures: not compared
                    continue
                key = tuple(m.get(name) for name in KEY_FIELDS)
                figure = figures.setdefault(key, Figure(m["unit"], m.get("better", "none")))
                figure.values[side].append(float(m["value"]))
    return figures


SIGNIFICANCE = 0.05
"""The p-value below which a difference beyond the threshold is called better or WORSE."""
_RESAMPLES = 10_000


def summary(figures: dict[tuple[Any, ...], Figure], threshold: float) -> list[str]:
    """One line per figure: medians, ratio B/A, p-value, verdict, all values."""
    lines = [
        f"{'workload':8} {'store':8} {'w':>2} {'figure':38} {'size':>6} {'A med':>10} "
        f"{'B med':>10} {'unit':6} {'B/A':>5} {'p':>5}  verdict  values A | B"
    ]
    for (store, workload, metric, size, workers), fig in figures.items():
        a, b = fig.values["A"], fig.values["B"]
        a_med = statistics.median(a) if a else None
        b_med = statistics.median(b) if b else None
        ratio = b_med / a_med if a_med and b_med is not None else None
        p = permutation_p(a, b)
        lines.append(
            f"{workload:8} {store:8} {workers if workers is not None else '-':>2} "
            f"{metric[:38]:38} {size if size is not None else '':>6} "
            f"{_num(a_med):>10} {_num(b_med):>10} {fig.unit:6} "
            f"{f'{ratio:.2f}' if ratio is not None else '-':>5} "
            f"{f'{p:.3f}' if p is not None else '-':>5}  "
            f"{verdict(ratio, fig, threshold, p):7}  "
            f"{' '.join(_num(x) for x in a)} | {' '.join(_num(x) for x in b)}"
        )
    return lines


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The two-sided p-value that ``a`` and ``b`` come from one distribution (the
    Mann-Whitney rank-sum test, by permutation): the share of the ways to split their pooled
    values into groups of their sizes whose rank sums are at least as far from what no
    difference gives. Every split when there are at most 10,000 (exact), else 10,000 random
    ones (seeded: the same values give the same p). None with fewer than two values on a
    side."""
    if len(a) < 2 or len(b) < 2:
        return None
    ranks = _ranks([*a, *b])
    n, total = len(a), len(a) + len(b)
    expected = n * (total + 1) / 2

    def distance(chosen: Sequence[int]) -> float:
        return abs(sum(ranks[i] for i in chosen) - expected)

    observed = distance(range(n)) - 1e-9
    if math.comb(total, n) <= _RESAMPLES:
        splits = extreme = 0
        for chosen in itertools.combinations(range(total), n):
            splits += 1
            extreme += distance(chosen) >= observed
        return extreme / splits
    rng = random.Random(0)
    order = list(range(total))
    extreme = 0
    for _ in range(_RESAMPLES):
        rng.shuffle(order)
        extreme += distance(order[:n]) >= observed
    return (extreme + 1) / (_RESAMPLES + 1)


def _ranks(values: Sequence[float]) -> list[float]:
    """The rank of each value among ``values`` (1 for the smallest; ties share their mean)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def verdict(ratio: float | None, fig: Figure, threshold: float, p: float | None = None) -> str:
    """``better``, ``WORSE``, ``same`` or ``unclear`` for B against A (see the module; with
    ``p`` None, beyond the threshold is judged on the ratio alone); ``only A``/``only B``
    when a side lacks the figure; memory figures, quotients and unjudged figures are ``-``."""
    if not fig.values["A"]:
        return "only B"
    if not fig.values["B"]:
        return "only A"
    if ratio is None or fig.unit in _UNJUDGED_UNITS or fig.better == "none":
        return "-"
    if abs(ratio - 1) < threshold:
        return "same"
    if p is not None and p >= SIGNIFICANCE:
        return "unclear"
    better = ratio > 1 if fig.better == "higher" else ratio < 1
    return "better" if better else "WORSE"


_UNJUDGED_UNITS = ("MiB", "x")
"""Memory, and quotients of other figures (see the module): listed, not judged."""


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the A/B and print (and with ``--out`` write) the echo and the summary."""
    args, bench_args = parse_args(argv)
    echo: list[str] = []
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with source_tree(args.a) as tree_a, source_tree(args.b) as tree_b:
        say(echo, f"# A = {args.a} ({tree_a}), B = {args.b} ({tree_b})")
        say(
            echo,
            f"# python -m bench {' '.join(bench_args)}, {args.rounds} round(s), alternating "
            "(A B, B A, A B, ...)",
        )
        if not args.no_compile:
            for tree in (tree_a, tree_b):
                compile_tree(tree)
            say(echo, "# both trees compiled to bytecode first (as pip install does)")
        trees = {"A": tree_a, "B": tree_b}
        for round_ in range(args.rounds):
            for label in round_order(round_):
                results[label].append(run_side(label, trees[label], bench_args, echo))
    lines = summary(collect(results), args.threshold)
    say(echo, "")
    say(
        echo,
        f"# summary: medians of {args.rounds} run(s) each, B/A, p of a rank-sum permutation test; "
        f"verdict beyond {args.threshold:.0%} when p < {SIGNIFICANCE}",
    )
    for line in lines:
        say(echo, line)
    if args.out is not None:
        args.out.write_text("\n".join(echo) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
