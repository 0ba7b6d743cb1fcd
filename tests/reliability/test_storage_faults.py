"""The SQLite file's storage failing under a running worker: the disk full (a small tmpfs),
the filesystem turned read-only by the kernel (an ext4 image whose error handling remounts it
read-only), the file deleted.

What must hold: callers get a clear error (a StoreError that says what is wrong), no instance
fails for it, nothing acknowledged is lost, ``PRAGMA integrity_check`` says ok; once space
returns the same worker goes on (no restart); a deleted file is noticed and the worker stops
rather than write where nobody will read.

These tests mount filesystems, so they need root; elsewhere they skip, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import treadle as wf
from treadle.errors import StoreError, TreadleError
from treadle.store import InstanceQuery, open_store

from .helpers import drain
from .ledger import Ledger, check, emit_line
from .procs import Workers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

CHAINS = 30
CLEAR = ("full", "space", "read-only", "readonly", "read only", "disk", "i/o")
GONE = ("deleted", "replaced", "moved", "removed", "no longer", "gone")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def _mounted(kind: str) -> Iterator[tuple[Path, str]]:
    """A fresh small filesystem: ``tmpfs`` (16 MiB) or ``ext4`` (an image on a loop device,
    mounted with errors=remount-ro); yields (mount point, device name)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    point = Path(tempfile.mkdtemp(prefix=f"treadle-{kind}-"))
    image = point.with_suffix(".img")
    try:
        if kind == "tmpfs":
            done = _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point))
        else:
            _run("truncate", "-s", "64M", str(image))
            made = _run("mkfs.ext4", "-q", "-F", str(image))
            if made.returncode != 0:
                pytest.skip(f"cannot make an ext4 image: {made.stderr}")
            done = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(point))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a {kind} here: {done.stderr.strip()}")
        source = _run("findmnt", "-n", "-o", "SOURCE", str(point)).stdout.strip()
        yield point, os.path.basename(source)
    finally:
        _run("umount", "-l", str(point))
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            point.rmdir()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _start_chains(
    client: wf.WorkflowClient, first: int, count: int
) -> tuple[dict[str, object], list[str]]:
    """Start chains; return those acknowledged (id -> output) and the errors of the others."""
    acknowledged: dict[str, object] = {}
    errors: list[str] = []
    for x in range(first, first + count):
        iid = f"c{x:04d}"
        try:
            client.schedule_new_workflow("chain", input=x, instance_id=iid)
            acknowledged[iid] = x + 3
        except TreadleError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return acknowledged, errors


def _emit(**fields: object) -> None:
    emit_line(json.dumps(fields))


def test_disk_full_then_space_returns_the_same_worker_finishes_everything(tmp_path: Path) -> None:
    with _mounted("tmpfs") as (point, _):
        db = point / "treadle.db"
        url = f"sqlite:///{db}"
        ledger_path = tmp_path / "ledger.db"
        ledger = Ledger(ledger_path)
        client = wf.WorkflowClient(open_store(url))
        workers = Workers(tmp_path, [[url, str(ledger_path), "--work", "0.05", "--no-check"]])
        try:
            expected, _ = _start_chains(client, 0, CHAINS)
            deadline = time.monotonic() + 30
            while ledger.returns() < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            filler = point / "filler"
            # (unbuffered, and the suppression outside the file: a buffered file's close
            # flushes what a failed write left, and that ENOSPC came after the suppression)
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 65536)
            more, errors = _start_chains(client, CHAINS, 10)  # on a full disk
            expected.update(more)
            time.sleep(3)
            alive_while_full = workers.procs[0].poll() is None
            filler.unlink()
            drain_s = drain(client, list(expected), 120.0)
            alive = workers.procs[0].poll() is None
        finally:
            codes = workers.stop()
        figures = check("disk_full", "sqlite", client, expected, ledger)
        client.close()
        integrity = _integrity(db)
    figures.extra.update(
        refused_starts=len(errors),
        alive_while_full=alive_while_full,
        integrity=integrity,
        drain_s=round(drain_s, 1),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    unclear = [e for e in errors if not any(w in e.lower() for w in CLEAR)]
    assert not unclear, f"errors that do not say the disk is full: {unclear[:3]}"
    assert alive and alive_while_full, f"the worker did not live through it\n{workers.tails()}"
    assert integrity == "ok"
    assert codes == [0], workers.tails()


def test_a_filesystem_turned_read_only_fails_nothing_and_loses_nothing(tmp_path: Path) -> None:
    with _mounted("ext4") as (point, device):
        trigger = Path(f"/sys/fs/ext4/{device}/trigger_fs_error")
        if not trigger.exists():
            pytest.skip(f"no {trigger}: cannot make the kernel turn the filesystem read-only")
        db = point / "treadle.db"
        url = f"sqlite:///{db}"
        ledger_path = tmp_path / "ledger.db"
        ledger = Ledger(ledger_path)
        client = wf.WorkflowClient(open_store(url))
        workers = Workers(tmp_path, [[url, str(ledger_path), "--work", "0.05", "--no-check"]])
        try:
            expected, _ = _start_chains(client, 0, CHAINS)
            deadline = time.monotonic() + 30
            while ledger.returns() < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            trigger.write_text("reliability test\n")  # the kernel remounts it read-only
            more, errors = _start_chains(client, CHAINS, 10)
            expected.update(more)
            time.sleep(3)
            client.close()
            reader = open_store(url)
            try:
                page = reader.list_instances(InstanceQuery(limit=100))
                statuses_while_ro = [r.status.name for r in page.instances]
            finally:
                reader.close()
        finally:
            workers.stop()
        # what the read-only filesystem holds is copied to a good disk (what an operator
        # does), and a worker started on it
        db = tmp_path / "recovered" / "treadle.db"
        db.parent.mkdir()
        for suffix in ("", "-wal"):
            source = point / f"treadle.db{suffix}"
            if source.exists():
                shutil.copyfile(source, f"{db}{suffix}")
        url = f"sqlite:///{db}"
        client = wf.WorkflowClient(open_store(url))
        workers = Workers(tmp_path, [[url, str(ledger_path), "--work", "0.05", "--no-check"]])
        try:
            drain_s = drain(client, list(expected), 120.0)
        finally:
            codes = workers.stop()
        figures = check("read_only", "sqlite", client, expected, ledger)
        client.close()
        integrity = _integrity(db)
    failed_while_ro = [s for s in statuses_while_ro if s == "FAILED"]
    figures.extra.update(
        refused_starts=len(errors),
        failed_while_read_only=len(failed_while_ro),
        integrity=integrity,
        drain_s=round(drain_s, 1),
    )
    figures.emit()
    figures.assert_sound(workers.tails())
    unclear = [e for e in errors if not any(w in e.lower() for w in CLEAR)]
    assert not unclear, f"errors that do not say the store is read-only: {unclear[:3]}"
    assert not failed_while_ro, "instances failed because the filesystem was read-only"
    assert integrity == "ok"
    assert codes == [0], workers.tails()


def test_a_deleted_database_file_is_noticed_not_written_to(tmp_path: Path) -> None:
    db = tmp_path / "data" / "treadle.db"
    url = f"sqlite:///{db}"
    ledger_path = tmp_path / "ledger.db"
    Ledger(ledger_path)
    client = wf.WorkflowClient(open_store(url))
    workers = Workers(tmp_path, [[url, str(ledger_path), "--work", "0.05", "--no-check"]])
    try:
        _start_chains(client, 0, CHAINS)
        time.sleep(1.0)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        # an old client writing after the deletion must be told, not write into the void
        try:
            client.schedule_new_workflow("chain", input=1, instance_id="after-delete")
            old_client_error = ""
        except StoreError as exc:
            old_client_error = str(exc)
        deadline = time.monotonic() + 30
        while workers.procs[0].poll() is None and time.monotonic() < deadline:
            text = (tmp_path / "worker-0.log").read_text(errors="replace").lower()
            if any(w in text for w in GONE):
                break
            time.sleep(0.2)
        log = (tmp_path / "worker-0.log").read_text(errors="replace")
    finally:
        workers.stop()
        client.close()
    noticed = any(w in log.lower() for w in GONE)
    _emit(
        test="file_deleted",
        store="sqlite",
        old_client_refused=bool(old_client_error),
        worker_noticed=noticed,
    )
    assert old_client_error and any(w in old_client_error.lower() for w in GONE), (
        f"a start on the deleted file was acknowledged (or its error does not say why): "
        f"{old_client_error!r}"
    )
    assert noticed, f"the worker did not say its database file is gone:\n{log[-2000:]}"
