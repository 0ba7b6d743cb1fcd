"""``python -m bench.instructions``: the instructions a W3 step executes in two trees, counted
by valgrind (a run under valgrind takes tens of seconds: marked slow)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.instructions import parse_args

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_tree_against_itself_counts_the_same_instructions_a_step() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.instructions", str(ROOT), str(ROOT), "--steps", "20,80"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert proc.returncode == 0, proc.stderr
    line = re.compile(r"^(busiest|threads|all)\s+A\s+([\d,]+)\s+B\s+([\d,]+)", re.M)
    figures = {
        kind: (float(a.replace(",", "")), float(b.replace(",", "")))
        for kind, a, b in line.findall(proc.stdout)
    }
    assert set(figures) == {"busiest", "threads", "all"}, proc.stdout
    a, b = figures["busiest"]
    # a step of a chain is tens of thousands of instructions, never nothing; the same code
    # counts within a few percent of itself (the thread that commits a step may vary)
    assert 50_000 < a < 5_000_000
    assert abs(b - a) / a < 0.10, proc.stdout


def test_bad_sizes_are_refused_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    for steps in ("500,100", "0,10", "ten,20"):
        with pytest.raises(SystemExit) as exc:
            parse_args([".", ".", "--steps", steps])
        assert exc.value.code == 2
        assert "--steps" in capsys.readouterr().err


def test_w1b_counts_workflows_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([".", ".", "--workload", "W1b"]).sizes == (50, 250)
    assert parse_args([".", "."]).sizes == (100, 500)
    assert parse_args([".", ".", "--workload", "W1b", "--steps", "5,10"]).sizes == (5, 10)
    with pytest.raises(SystemExit):
        parse_args([".", ".", "--workload", "W2"])
    assert "--workload" in capsys.readouterr().err


def test_env_b_sets_variables_for_side_b_alone(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args([".", ".", "--env-b", "TREADLE_BENCH_OBSERVABILITY=1", "--env-b", "X=a=b"])
    assert args.b_env == {"TREADLE_BENCH_OBSERVABILITY": "1", "X": "a=b"}
    with pytest.raises(SystemExit):
        parse_args([".", ".", "--env-b", "NOVALUE"])
    assert "--env-b takes NAME=VALUE" in capsys.readouterr().err
