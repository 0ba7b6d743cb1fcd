"""``python -m bench.ab``: an interleaved A/B of two trees prints every run's lines with its
side's label and a summary that pairs each figure of A with the same figure of B."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.ab import Figure, permutation_p, round_order, summary, verdict

ROOT = Path(__file__).resolve().parents[2]


def test_ab_of_a_tree_against_itself_pairs_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "ab.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ab",
            str(ROOT),
            str(ROOT),
            "--rounds",
            "1",
            "--out",
            str(out),
            "--",
            "--quick",
            "--only",
            "W3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text == proc.stdout
    assert "=== A (" in text and "=== B (" in text
    assert "A W3   treadle sqlite" in text and "B W3   treadle sqlite" in text
    rows = [
        line for line in text.splitlines() if line.startswith("W3 ") and " time per step  " in line
    ]
    assert len(rows) == 4, rows  # quick W3: 100, 200, 400 and 1,000 steps
    for row in rows:
        assert "only" not in row  # both sides have it
        a_values, b_values = row.split("  ")[-1].split(" | ")
        assert float(a_values) > 0 and float(b_values) > 0


def test_each_side_goes_first_in_turn() -> None:
    orders = [round_order(i) for i in range(4)]
    assert orders == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A")]
    # over an even number of rounds each side runs first, and second, equally often
    assert sum(order[0] == "A" for order in orders) == 2


def test_ab_refuses_what_is_not_a_tree_or_revision(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ab", str(tmp_path), "no-such-revision-xyz", "--", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "not a treadle source tree" in proc.stderr


def test_verdict_follows_the_better_direction_and_threshold() -> None:
    faster = Figure("ms", "lower", {"A": [1.0, 1.2], "B": [0.8, 0.9]})
    assert verdict(0.85 / 1.1, faster, 0.05) == "better"
    assert verdict(1.2, faster, 0.05) == "WORSE"
    assert verdict(1.03, faster, 0.05) == "same"
    throughput = Figure("wf/s", "higher", {"A": [900.0], "B": [1000.0]})
    assert verdict(1000 / 900, throughput, 0.05) == "better"
    assert verdict(None, Figure("ms", "lower", {"A": [], "B": [1.0]}), 0.05) == "only B"
    assert verdict(1.5, Figure("MiB", "lower", {"A": [1.0], "B": [1.5]}), 0.05) == "-"
    # a quotient of figures judged on their own lines (W3's 10k/1k ratio) is listed only
    ratio = Figure("x", "lower", {"A": [8.1, 8.2, 8.3, 8.2], "B": [9.0, 9.1, 9.2, 9.1]})
    assert verdict(9.1 / 8.2, ratio, 0.05, 0.03) == "-"
    clearly = Figure(
        "ms", "lower", {"A": [1.0, 1.2, 1.1, 1.05, 1.15], "B": [0.8, 0.9, 0.85, 0.95, 0.9]}
    )
    lines = summary({("sqlite", "W3", "time per step", 100, 1): clearly}, 0.05)
    assert "0.82" in lines[1] and "0.008" in lines[1] and "better" in lines[1]
    # beyond the threshold, but two values a side cannot tell it from noise
    lines = summary({("sqlite", "W3", "time per step", 100, 1): faster}, 0.05)
    assert "0.333" in lines[1] and "unclear" in lines[1]


def test_the_p_value_is_exact_for_few_rounds_and_seeded_for_many() -> None:
    # 5 against 5, every B above every A: 2 of the 252 splits are as far apart (both ways)
    assert permutation_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == 2 / 252
    assert permutation_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert permutation_p([1.0], [2.0, 3.0]) is None  # (one value: no test)
    # ties share their rank: all equal is no evidence either way
    assert permutation_p([5.0, 5.0, 5.0], [5.0, 5.0]) == 1.0
    # 15 against 15 (155 million splits): 10,000 seeded random ones, the same p each time
    a = [1.0 + i / 100 for i in range(15)]
    b = [1.15 + i / 100 for i in range(15)]
    first = permutation_p(a, b)
    assert first is not None and first < 0.01 and permutation_p(a, b) == first
    assert verdict(1.1, Figure("ms", "lower", {"A": a, "B": b}), 0.05, first) == "WORSE"
    assert verdict(1.1, Figure("ms", "lower", {"A": a, "B": b}), 0.05, 0.2) == "unclear"
