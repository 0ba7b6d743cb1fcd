"""A full disk is an outage, not a failure: a SQLite store on a small tmpfs runs out of
space while an activity's 3 MiB result is committed; the runtime waits and retries, the
instance stays RUNNING, and once space returns it completes with that result, without a
restart, and the file passes ``integrity_check``.

The tmpfs needs the right to mount one (root, or a user namespace): without it the test
skips and says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import treadle as wf
from treadle.errors import StoreUnavailableError

from .helpers import Workflow, finish, wait_until

MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on its own 32 MiB tmpfs (unmounted afterwards)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path, leave: int) -> Path:
    """Fill ``directory``'s file system but ``leave`` bytes; the filler file."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    size = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, size))
    return filler


def test_a_full_disk_is_waited_out_and_nothing_is_lost(
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"sqlite:///{small_disk / 'treadle.db'}"
    big = "x" * (3 * MIB)
    digest = hashlib.sha256(big.encode()).hexdigest()
    store = wf.WorkflowClient(url)
    runtime = wf.WorkflowRuntime(url)
    filled = threading.Event()

    @runtime.activity
    def produce(ctx: wf.WorkflowActivityContext, n: int) -> str:
        assert filled.wait(20), "the disk was not filled"
        return big

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[str]:
        out: str = yield ctx.call_activity(produce, input=n)
        return hashlib.sha256(out.encode()).hexdigest()

    runtime.start()
    try:
        with caplog.at_level(logging.WARNING, logger="treadle"):
            iid = store.schedule_new_workflow(flow, input=1)  # (recorded before the disk fills)
            filler = fill(small_disk, leave=1 * MIB)
            filled.set()  # the activity returns its 3 MiB now
            wait_until(
                lambda: "is full" in caplog.text,
                timeout=20,
                what="a warning that the store is full",
            )
            time.sleep(0.5)
            state = store.get_workflow_state(iid)
            assert state is not None
            assert state.runtime_status is wf.WorkflowStatus.RUNNING, state
            # a client's write meanwhile is told the store is unavailable, and why
            with pytest.raises(StoreUnavailableError, match="is full"):
                store.schedule_new_workflow(flow, input="y" * (2 * MIB))
            filler.unlink()  # space returns: the runtime goes on by itself
            done = finish(store, iid, timeout=30)
        assert done.runtime_status is wf.WorkflowStatus.COMPLETED, done
        assert done.serialized_output == f'"{digest}"'
    finally:
        runtime.shutdown(timeout=5)
        store.close()
    with sqlite3.connect(small_disk / "treadle.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _fault_trigger(url: str, errcode: str) -> Callable[[bool], None]:
    """A PostgreSQL trigger on the store's history that raises ``errcode`` (a real error of
    the server) while switched on; the switch."""
    import psycopg

    conninfo, _, query = url.partition("?")
    schema = parse_qs(query)["schema"][0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("CREATE TABLE fault (errcode text)")
        conn.execute(
            "CREATE FUNCTION raise_fault() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE code text; BEGIN SELECT errcode INTO code FROM fault LIMIT 1; "
            "IF code IS NOT NULL THEN RAISE EXCEPTION 'injected: %', code USING ERRCODE = code; "
            "END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fault BEFORE INSERT ON history "
            "FOR EACH ROW EXECUTE FUNCTION raise_fault()"
        )

    def switch(on: bool) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("DELETE FROM fault")
            if on:
                conn.execute("INSERT INTO fault VALUES (%s)", (errcode,))

    return switch


@pytest.mark.postgres
@pytest.mark.parametrize("errcode", ["disk_full", "out_of_memory", "too_many_connections"])
def test_postgres_out_of_space_is_waited_out_and_nothing_is_lost(
    postgres_schema_url: str, caplog: pytest.LogCaptureFixture, errcode: str
) -> None:
    url = postgres_schema_url
    client = wf.WorkflowClient(url)
    runtime = wf.WorkflowRuntime(url)
    switched = threading.Event()

    @runtime.activity
    def produce(ctx: wf.WorkflowActivityContext, n: int) -> str:
        assert switched.wait(20), "the fault was not switched on"
        return "y" * MIB

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        out: str = yield ctx.call_activity(produce, input=n)
        return len(out)

    runtime.start()
    try:
        switch = _fault_trigger(url, errcode)
        with caplog.at_level(logging.WARNING, logger="treadle"):
            iid = client.schedule_new_workflow(flow, input=1)
            client.wait_for_workflow_start(iid, timeout_in_seconds=10)
            switch(True)
            switched.set()
            wait_until(lambda: "injected" in caplog.text, timeout=20, what="the injected error")
            time.sleep(0.5)
            state = client.get_workflow_state(iid)
            assert state is not None
            assert state.runtime_status is wf.WorkflowStatus.RUNNING, state
            switch(False)
            done = finish(client, iid, timeout=30)
        assert done.runtime_status is wf.WorkflowStatus.COMPLETED, done
        assert done.serialized_output == str(MIB)
    finally:
        runtime.shutdown(timeout=5)
        client.close()


@pytest.mark.postgres
def test_postgres_a_value_it_can_never_hold_fails_the_instance(
    postgres_schema_url: str,
) -> None:
    # program_limit_exceeded (54000) is what PostgreSQL says of a value too big for it:
    # psycopg files it with the outages (OperationalError), but no retry would help
    url = postgres_schema_url
    client = wf.WorkflowClient(url)
    runtime = wf.WorkflowRuntime(url)
    switched = threading.Event()

    @runtime.activity
    def produce(ctx: wf.WorkflowActivityContext, n: int) -> int:
        assert switched.wait(20), "the fault was not switched on"
        return n

    @runtime.workflow
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        out: int = yield ctx.call_activity(produce, input=n)
        return out

    runtime.start()
    try:
        switch = _fault_trigger(url, "program_limit_exceeded")
        iid = client.schedule_new_workflow(flow, input=1)
        client.wait_for_workflow_start(iid, timeout_in_seconds=10)
        switch(True)
        switched.set()
        wait_until(
            lambda: (
                (s := client.get_workflow_state(iid)) is not None
                and s.runtime_status is wf.WorkflowStatus.FAILED
            ),
            timeout=20,
            what="the instance FAILED",
        )
        state = client.get_workflow_state(iid)
        assert state is not None and state.failure_details is not None
        assert "injected: program_limit_exceeded" in state.failure_details.message
    finally:
        runtime.shutdown(timeout=5)
        client.close()
