"""A look at the store's leases, straight from its tables (the public API does not show them),
and pausing a worker process with SIGSTOP without freezing the others.

Each call opens its own connection, so a paused worker or a restarted server does no harm.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Set as AbstractSet
from typing import Any

import psycopg
from psycopg import sql


def pid_of(owner: str) -> int | None:
    """The process id in a runtime's lease owner name (``host:pid:suffix``)."""
    parts = owner.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Leases:
    """Instance leases in the store at ``url`` (a SQLite file or a PostgreSQL schema)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._sqlite = url.startswith("sqlite")
        if self._sqlite:
            self._path = url.removeprefix("sqlite://").split("?")[0]
        else:
            base, _, query = url.partition("?")
            self._base = base
            self._schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite:
            conn = sqlite3.connect(self._path, timeout=30)
            try:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self._base, application_name="reliability-peek") as pg:
            pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            return pg.execute(query, params).fetchall()

    def held(self) -> dict[str, dict[str, int]]:
        """Owner -> the instances it leases, with their versions."""
        out: dict[str, dict[str, int]] = {}
        for owner, iid, version in self._rows(
            "SELECT lease_owner, instance_id, version FROM instances "
            "WHERE lease_owner IS NOT NULL ORDER BY instance_id"
        ):
            out.setdefault(owner, {})[iid] = version
        return out

    def tasks_of(self, owner: str) -> set[int]:
        """The activity task rows ``owner`` leases."""
        rows = self._rows("SELECT id FROM activity_tasks WHERE lease_owner = %s", (owner,))
        return {int(r[0]) for r in rows}

    def taken_over(
        self, owner: str, held: dict[str, int], tasks: AbstractSet[int] = frozenset()
    ) -> list[str]:
        """What of ``held`` (instances) and ``tasks`` another runtime took since: an
        instance another committed a turn of (its version moved) or leases; a task another
        leases, or completed (its row is gone)."""
        rows = self._rows(
            "SELECT instance_id, version, lease_owner FROM instances ORDER BY instance_id"
        )
        taken = [
            iid
            for iid, version, holder in rows
            if iid in held and (version != held[iid] or holder not in (None, owner))
        ]
        if tasks:
            present = {
                int(task_id): holder
                for task_id, holder in self._rows("SELECT id, lease_owner FROM activity_tasks")
            }
            taken += [
                f"task {t}"
                for t in sorted(tasks)
                if t not in present or present[t] not in (None, owner)
            ]
        return taken

    def pause(self, pid: int) -> None:
        """SIGSTOP ``pid`` at a moment it holds no SQLite write transaction.

        A process stopped inside a write holds the file's write lock, and every other process
        waits on it: the hazard of pausing a SQLite writer, not what a fencing test is about.
        On PostgreSQL it simply stops it.
        """
        for _ in range(200):
            os.kill(pid, signal.SIGSTOP)
            if not self._sqlite:
                return
            probe = sqlite3.connect(self._path, timeout=0.05, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return
            except sqlite3.OperationalError:
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.01)
            finally:
                probe.close()
        raise AssertionError(f"worker {pid} held the write lock at each of 200 pauses")
