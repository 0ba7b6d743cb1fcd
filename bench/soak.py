"""``python -m bench.soak``: does a SQLite store stop growing under steady load with retention?

Runs workflows (a two-step activity chain) in waves on one SQLite file, with a runtime whose
retention policy purges COMPLETED instances ``--keep`` seconds after they finish, and prints
the file's size (database plus WAL) after each wave. With retention on, the size levels off
once purges keep pace with starts; ``--no-retention`` shows the growth without it.

    python -m bench.soak                      # 5,000 workflows in waves of 500
    python -m bench.soak --full               # 100,000 workflows in waves of 2,000
    python -m bench.soak --workflows 2000 --wave 200 --keep 0.5

It prints figures and asserts nothing; ``tests/e2e/test_retention_soak.py`` runs a small one.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import treadle as wf


def _step(ctx: wf.WorkflowActivityContext, value: int) -> int:
    return value + 1


def _chain(ctx: wf.WorkflowContext, value: int) -> Any:
    value = yield ctx.call_activity(_step, input=value)
    return (yield ctx.call_activity(_step, input=value))


@dataclass(frozen=True)
class Wave:
    """One wave's figures."""

    done: int
    """Workflows finished so far."""
    seconds: float
    """Wall time of the wave."""
    file_bytes: int
    """The database file plus its WAL after the wave."""
    free_pages: int
    """Pages on SQLite's free list (space kept in the file for reuse)."""
    instances: int
    """Instances left in the store."""


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _free_pages(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute("PRAGMA freelist_count").fetchone()
    return int(row[0])


def soak(path: Path, *, workflows: int, wave: int, keep_s: float, retention: bool) -> list[Wave]:
    """Run ``workflows`` workflows in waves of ``wave`` on a SQLite file at ``path``; return
    each wave's figures."""
    url = f"sqlite:///{path}"
    policy = (
        wf.RetentionPolicy(
            completed=timedelta(seconds=keep_s), interval=timedelta(seconds=max(keep_s, 0.2))
        )
        if retention
        else None
    )
    runtime = wf.WorkflowRuntime(url, retention=policy)
    runtime.register_workflow(_chain, name="chain")
    runtime.register_activity(_step, name="_step")
    waves: list[Wave] = []
    with runtime, wf.WorkflowClient(url) as client:
        done = 0
        while done < workflows:
            began = time.perf_counter()
            n = min(wave, workflows - done)
            ids = [client.schedule_new_workflow("chain", input=i) for i in range(n)]
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
                if state is None:
                    continue  # (purged already: it finished)
                if state.runtime_status is not wf.WorkflowStatus.COMPLETED:
                    raise RuntimeError(f"{iid} ended {state.runtime_status.name}")
            done += n
            count = _left(client)
            deadline = time.monotonic() + 60
            while retention and count > n and time.monotonic() < deadline:
                time.sleep(0.05)  # the steady state: the waves before this one purged
                count = _left(client)
            waves.append(
                Wave(done, time.perf_counter() - began, _size(path), _free_pages(path), count)
            )
            print(
                f"  {done:>8,} workflows  {waves[-1].seconds:6.2f} s  "
                f"file {waves[-1].file_bytes / 1e6:8.2f} MB  "
                f"free pages {waves[-1].free_pages:>7,}  instances left {count:>5,}"
                + ("+" if count >= 1000 else ""),
                flush=True,
            )
    return waves


def _left(client: wf.WorkflowClient) -> int:
    return len(client.list_workflows(page_size=1000).states)


def growth(waves: list[Wave]) -> float:
    """How much the file grew over the second half of the run, as a fraction of its size at
    the half-way mark (0: it stopped growing)."""
    half = waves[len(waves) // 2 - 1] if len(waves) >= 2 else waves[0]
    return (waves[-1].file_bytes - half.file_bytes) / max(half.file_bytes, 1)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the soak, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--workflows", type=int, default=5_000)
    parser.add_argument("--wave", type=int, default=500)
    parser.add_argument("--full", action="store_true", help="100,000 workflows, waves of 2,000")
    parser.add_argument("--keep", type=float, default=0.5, help="seconds COMPLETED ones are kept")
    parser.add_argument("--no-retention", action="store_true")
    parser.add_argument("--dir", help="where the SQLite file goes (default: a temporary one)")
    args = parser.parse_args(argv)
    workflows, wave = (100_000, 2_000) if args.full else (args.workflows, args.wave)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "soak.db"
        retention = not args.no_retention
        print(
            f"soak: {workflows:,} workflows in waves of {wave:,} on SQLite "
            f"{sqlite3.sqlite_version}, retention "
            + (f"COMPLETED after {args.keep} s" if retention else "off")
            + f", pid {os.getpid()}"
        )
        waves = soak(path, workflows=workflows, wave=wave, keep_s=args.keep, retention=retention)
        peak = max(w.file_bytes for w in waves)
        print(
            f"file: peak {peak / 1e6:.2f} MB, last {waves[-1].file_bytes / 1e6:.2f} MB, "
            f"growth over the second half {growth(waves) * 100:+.1f}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
