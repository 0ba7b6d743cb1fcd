"""The leases of runtimes on this host whose process is gone (killed with ``kill -9``).

A runtime that starts frees them at once, where a runtime elsewhere would wait for them to
lapse: an owner names its host and process id (``host:pid:nonce``), so a runtime can tell
that the process of an owner on its own host has died.

Threads: the application's, in ``WorkflowRuntime.start``. It holds no state; it reads the
store's lease owners and releases those of dead processes.
"""

from __future__ import annotations

import logging
import os
import socket

from treadle.store import Store

__all__ = ["process_alive", "release_dead_local_owners"]

logger = logging.getLogger(__name__)


def release_dead_local_owners(store: Store) -> None:
    """Free the leases of runtimes on this host whose process is gone (after kill -9)."""
    host = socket.gethostname()
    for owner in store.lease_owners():
        parts = owner.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or process_alive(pid):
            continue
        logger.info("releasing the leases of %s (its process is gone)", owner)
        store.release_leases(owner)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (dead, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": the state follows the last ")" (comm may hold one)
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): os.kill said it exists
    return state not in (b"Z", b"X")
