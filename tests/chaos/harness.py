"""The chaos test's machinery: worker processes, a peek at leases, restarting PostgreSQL."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from reliability.procs import ProcessSlots

T = TypeVar("T")
WORKER_SCRIPT = Path(__file__).with_name("chaos_worker.py")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises:
        AssertionError: ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def pid_of(owner: str) -> int | None:
    """The process id in a runtime's lease owner name (``host:pid:suffix``)."""
    parts = owner.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Workers(ProcessSlots):
    """Worker processes (``chaos_worker.py``), one per slot, each restartable."""

    def __init__(self, directory: Path, url: str, log: Path, lease_s: float, count: int) -> None:
        super().__init__(directory, [[str(WORKER_SCRIPT), url, str(log), str(lease_s)]] * count)

    def slot_of(self, pid: int) -> int | None:
        """The slot whose current process has this pid."""
        return next((s for s, p in enumerate(self.procs) if p.pid == pid), None)

    def kill(self, slot: int) -> None:
        """SIGKILL the slot's process and reap it."""
        proc = self.procs[slot]
        proc.kill()
        proc.wait(timeout=10)
        self._close_stdin(proc)


@dataclass(frozen=True)
class Held:
    """A snapshot of one owner's leases.

    Attributes:
        owner: the lease owner.
        instances: instance id -> (version, lease expiry).
        tasks: activity task id -> lease expiry.
    """

    owner: str
    instances: dict[str, tuple[int, datetime]]
    tasks: dict[int, datetime]


class Peek:
    """Reads treadle's tables directly, for what the public API does not show: leases.

    Each call opens its own connection, so a PostgreSQL restart in between does no harm.
    """

    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._schema = schema

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run ``query`` in the store's schema; return its rows."""
        with psycopg.connect(self._url, application_name="treadle-chaos") as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            return conn.execute(query, params).fetchall()

    def instance_leases(self) -> dict[str, int]:
        """Unexpired instance leases per owner."""
        return dict(
            self.rows(
                "SELECT lease_owner, count(*) FROM instances WHERE lease_owner IS NOT NULL "
                "AND lease_expires_at > now() GROUP BY lease_owner ORDER BY lease_owner"
            )
        )

    def held_by(self, owner: str) -> Held:
        """What ``owner`` leases now: its instances' versions and its activity tasks."""
        instances = self.rows(
            "SELECT instance_id, version, lease_expires_at FROM instances "
            "WHERE lease_owner = %s ORDER BY instance_id",
            (owner,),
        )
        tasks = self.rows(
            "SELECT id, lease_expires_at FROM activity_tasks WHERE lease_owner = %s ORDER BY id",
            (owner,),
        )
        return Held(
            owner,
            {iid: (version, expires) for iid, version, expires in instances},
            dict(tasks),
        )

    def taken_over(self, held: Held) -> list[tuple[str, datetime]]:
        """What of ``held`` another worker has taken since, with when its lease expired.

        An instance counts once its version changed (someone else committed a turn) or
        another owner leases it; an activity task once another owner leases it.
        """
        instances = self.rows(
            "SELECT instance_id, version, lease_owner FROM instances "
            "WHERE instance_id = ANY(%s::text[]) ORDER BY instance_id",
            (list(held.instances),),
        )
        tasks = self.rows(
            "SELECT id FROM activity_tasks WHERE id = ANY(%s::bigint[]) "
            "AND lease_owner IS NOT NULL AND lease_owner <> %s ORDER BY id",
            (list(held.tasks), held.owner),
        )
        found = [
            (f"instance {iid}", held.instances[iid][1])
            for iid, version, holder in instances
            if version != held.instances[iid][0] or holder not in (None, held.owner)
        ]
        found += [(f"activity task {task_id}", held.tasks[task_id]) for (task_id,) in tasks]
        return found

    def now(self) -> datetime:
        """The database's clock."""
        now: datetime = self.rows("SELECT now()")[0][0]
        return now

    def terminate_connections(self) -> int:
        """Close the connections named after the schema (what a restart does to them)."""
        row = self.rows(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (self._schema,),
        )
        return int(row[0][0])


def restart_command(url: str) -> list[str] | None:
    """How to restart the PostgreSQL server at ``url``, if this test can.

    ``$TREADLE_CHAOS_RESTART_POSTGRES`` (a shell command) if set; else, as root on a Debian
    host whose cluster serves the URL's local port, ``pg_ctlcluster ... restart``.
    """
    custom = os.environ.get("TREADLE_CHAOS_RESTART_POSTGRES")
    if custom:
        return shlex.split(custom)
    parts = urlsplit(url)
    local = parts.hostname in (None, "", "127.0.0.1", "localhost", "::1")
    if not local or os.geteuid() != 0 or shutil.which("pg_lsclusters") is None:
        return None
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(parts.port or 5432) and fields[3] == "online":
            return ["pg_ctlcluster", "--skip-systemctl-redirect", fields[0], fields[1], "restart"]
    return None
