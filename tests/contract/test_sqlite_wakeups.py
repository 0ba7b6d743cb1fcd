"""A worker waiting on SQLite hears of new work from writers its wake-ups cannot reach."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from treadle.core.history import EventRaised
from treadle.store.base import NewMessage
from treadle.store.sqlite import WORK_POLL_S, SqliteStore
from treadle.store.sqlite.shared import acquire, release

from .helpers import new_instance

WRITER = textwrap.dedent(
    """
    import sys

    from treadle.core.history import EventRaised
    from treadle.store.base import NewMessage
    from treadle.store.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    store.send_message(NewMessage("o-1", EventRaised(name="from-elsewhere")))
    store.close()
    """
)


def test_a_writer_with_another_temp_directory_still_wakes_a_worker(tmp_path: Path) -> None:
    """A process whose temporary directory differs (systemd's PrivateTmp, say) cannot send
    wake-ups to ours; the worker's token still notices its commit, within WORK_POLL_S."""
    url = f"sqlite:///{tmp_path / 'treadle.db'}"
    store = SqliteStore(url)
    try:
        store.create_instance(new_instance("o-1"))
        token = store.wait_for_work(0.05, work_only=True)  # listening from here on
        # the same kind of write from this process wakes at once, through the wake-ups
        store.send_message(NewMessage("o-1", EventRaised(name="here")))
        token = store.wait_for_work(0.0, token, work_only=True)
        other_tmp = tmp_path / "other-tmp"
        other_tmp.mkdir()
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        env = {**os.environ, "TMPDIR": str(other_tmp)}
        subprocess.run([sys.executable, str(script), url], env=env, check=True, timeout=60)
        started = time.monotonic()
        assert store.wait_for_work(5.0, token, work_only=True) != token
        assert time.monotonic() - started < WORK_POLL_S + 0.5
        messages = store.claim_orchestrations("w1", 10, 30)[0].messages
        names = [e.name for m in messages if isinstance(e := m.event, EventRaised)]
        assert names[-2:] == ["here", "from-elsewhere"]
    finally:
        store.close()


def test_a_worker_waiting_for_work_is_not_woken_by_a_wake_up_that_gives_none(
    tmp_path: Path,
) -> None:
    """A worker waits on the wake-ups that give work: a commit that only changes a status
    (what most steps of a busy runtime do) wakes the clients waiting, not the worker."""
    database = str(tmp_path / "treadle.db")
    store = SqliteStore(f"sqlite:///{database}")
    here = acquire(database, is_file=True)  # the wake-ups of this process on that file
    try:
        woken: list[str] = []
        waiting = [threading.Event(), threading.Event()]

        def wait_on(changed: threading.Condition, name: str, entered: threading.Event) -> None:
            with changed:
                entered.set()
                if changed.wait(timeout=1.0):
                    woken.append(name)

        waiters = [
            threading.Thread(target=wait_on, args=(here.work_changed, "worker", waiting[0])),
            threading.Thread(target=wait_on, args=(here.changed, "client", waiting[1])),
        ]
        for thread in waiters:
            thread.start()
        assert all(entered.wait(5) for entered in waiting), "a waiter never started"
        with here.changed:  # (both conditions share one lock: both waiters now wait)
            pass
        generation, work = here.generation, here.work_generation
        here.notify_local(orchestrations=False, activities=False)
        for thread in waiters:
            thread.join(timeout=5)
        assert woken == ["client"]
        assert (here.generation, here.work_generation) == (generation + 1, work)
        here.notify_local(orchestrations=False, activities=True)
        assert (here.generation, here.work_generation) == (generation + 2, work + 1)
    finally:
        release(here)
        store.close()
