"""A claim on SQLite costs the same whatever the number of finished instances in the file.

Measured as SQLite's own work (virtual machine steps, counted by a progress handler on the
claiming thread's connection), so it holds on a loaded machine: a claim that read every
instance (as one did, when the planner began its join with the instances for the GROUP BY)
grows a hundredfold between the two stores below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.store.sqlite import SqliteStore

from .helpers import finish, start

_STEP = 100  # SQLite instructions per count


def _claim_work(tmp_path: Path, finished: int, names: list[str] | None) -> int:
    """SQLite's work (in steps of _STEP instructions) for claiming the one waiting instance
    of a store holding ``finished`` finished instances."""
    store = SqliteStore(f"sqlite:///{tmp_path / f'claims-{finished}.db'}?synchronous=off")
    try:
        for i in range(finished):
            start(store, f"done-{i}")
            finish(store, f"done-{i}")
        start(store, "waiting")
        count = 0

        def tick() -> int:
            nonlocal count
            count += 1
            return 0

        conn = store._db.conn()  # (the connection the claim below runs on: this thread's)
        conn.set_progress_handler(tick, _STEP)
        try:
            items = store.claim_orchestrations("w2", 10, 30, names=names)
        finally:
            conn.set_progress_handler(None, 0)
        assert [i.instance.instance_id for i in items] == ["waiting"]
        return count
    finally:
        store.close()


@pytest.mark.parametrize("names", [None, ["wf"]], ids=["any-workflow", "named-workflows"])
def test_a_claim_reads_no_finished_instance(tmp_path: Path, names: list[str] | None) -> None:
    few = _claim_work(tmp_path, 10, names)
    many = _claim_work(tmp_path, 1500, names)
    assert many < 3 * few + 20, (few, many)
