"""Soak: 20,000 workflows (``TREADLE_RELIABILITY_SCALE=5``: 100,000) through one worker
process, on SQLite and on PostgreSQL, its resources sampled all along: resident memory, open
files, threads, and the database's size.

After warm-up its memory must stay flat: the largest sample of the last quarter of the run
may exceed the largest of the second quarter by a generous margin only (``RSS_RATIO``, plus
``RSS_SLACK_MIB``); threads and open files may not grow at all beyond a small slack. The
checker (see :mod:`reliability.ledger`) then finds every workflow completed with its output.

The soak is about leaks, not durability (the crash tests are): its SQLite database and its
ledger live on a RAM disk (``/dev/shm``) where the machine has one, so that fsyncs do not set
its pace.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import treadle as wf
from treadle.store import open_store

from .conftest import scaled
from .helpers import drain, start
from .ledger import Ledger, check
from .procs import PgCluster, Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

WORKFLOWS = 20_000
IN_FLIGHT = 500  # started but not finished, at most
SAMPLE_S = 0.2
RSS_RATIO = 1.25
RSS_SLACK_MIB = 24.0
THREADS_SLACK = 2
FILES_SLACK = 8


@pytest.fixture
def soak_dir() -> Iterator[Path]:
    """A fresh directory on a RAM disk if there is one, else under the system's temp dir."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    directory = Path(tempfile.mkdtemp(prefix="treadle-soak-", dir=base))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _db_size(url: str) -> int:
    """The store's size in bytes: its SQLite files, or its PostgreSQL schema's relations."""
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite://"))
        return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.exists())
    base, _, query = url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
    with psycopg.connect(base) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0]) if row else 0


def _sample(pid: int, url: str) -> tuple[float, float, int, int, int]:
    """(time, RSS in MiB, threads, open files, database bytes) of the worker now."""
    status = _status(pid)
    rss_mib = int(status["VmRSS"].split()[0]) / 1024
    threads = int(status["Threads"])
    files = len(os.listdir(f"/proc/{pid}/fd"))
    return time.monotonic(), rss_mib, threads, files, _db_size(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_soak_memory_threads_and_files_stay_flat(
    backend: str, soak_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    total = scaled(WORKFLOWS, 200)
    if backend == "sqlite":
        url = f"sqlite:///{soak_dir / 'treadle.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = f"{cluster.url}?schema=soak_{uuid.uuid4().hex[:12]}"
    ledger_path = soak_dir / "ledger.db"
    ledger = Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(url))
    workers = Workers(tmp_path, [[url, str(ledger_path), "--lean", "--work", "0"]])
    pid = workers.procs[0].pid
    samples: list[tuple[float, float, int, int, int]] = []
    expected: dict[str, object] = {}
    began = time.monotonic()
    next_sample = began
    try:
        sent = 0
        while sent < total:
            done = ledger.returns()
            room = IN_FLIGHT - (sent - done)
            for x in range(sent, min(total, sent + max(0, room))):
                iid = f"s{x:06d}"
                start(client, "hop", x, iid)
                expected[iid] = x + 1
            sent = max(sent, min(total, sent + max(0, room)))
            if time.monotonic() >= next_sample:
                samples.append(_sample(pid, url))
                next_sample += SAMPLE_S
            if room <= 0:
                time.sleep(0.02)
            assert workers.procs[0].poll() is None, workers.tails()
        drain_s = drain(client, list(expected)[-IN_FLIGHT:], 120.0)
        samples.append(_sample(pid, url))
        run_s = time.monotonic() - began
    finally:
        exit_codes = workers.stop()
    figures = check("soak", backend, client, expected, ledger)
    client.close()

    n = len(samples)
    assert n >= 8, f"only {n} samples in {run_s:.0f} s"
    second = samples[n // 4 : n // 2]
    last = samples[3 * n // 4 :]

    def peak(part: list[tuple[float, float, int, int, int]], k: int) -> float:
        return max(float(s[k]) for s in part)

    figures.extra.update(
        seconds=round(run_s, 1),
        workflows_per_s=round(total / run_s, 1),
        samples=n,
        rss_mib_first=round(samples[0][1], 1),
        rss_mib_q2_max=round(peak(second, 1), 1),
        rss_mib_q4_max=round(peak(last, 1), 1),
        rss_mib_q4_median=round(statistics.median(s[1] for s in last), 1),
        threads_q2_max=int(peak(second, 2)),
        threads_q4_max=int(peak(last, 2)),
        open_files_q2_max=int(peak(second, 3)),
        open_files_q4_max=int(peak(last, 3)),
        db_mib_end=round(samples[-1][4] / 2**20, 1),
        drain_s=round(drain_s, 1),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    assert figures.completed == total
    assert peak(last, 1) <= peak(second, 1) * RSS_RATIO + RSS_SLACK_MIB, figures.line()
    assert peak(last, 2) <= peak(second, 2) + THREADS_SLACK, figures.line()
    assert peak(last, 3) <= peak(second, 3) + FILES_SLACK, figures.line()
    assert exit_codes == [0], workers.tails()
