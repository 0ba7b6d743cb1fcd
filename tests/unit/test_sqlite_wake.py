"""Cross-process wake-ups for SQLite: datagrams between the processes on one file."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from treadle.store.sqlite_wake import WakeChannel

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


def test_a_broadcast_wakes_the_other_listener_not_the_sender(tmp_path: Path) -> None:
    database = str(tmp_path / f"{uuid.uuid4().hex}.db")
    woken_a, woken_b = threading.Event(), threading.Event()
    a = WakeChannel(database, woken_a.set)
    b = WakeChannel(database, woken_b.set)
    try:
        a.listen()
        b.listen()
        woken_a.clear()  # b's hello woke a
        b.broadcast()
        assert woken_a.wait(5)
        assert not woken_b.is_set()
    finally:
        a.close()
        b.close()


def test_sockets_left_by_dead_processes_are_removed(tmp_path: Path) -> None:
    database = str(tmp_path / f"{uuid.uuid4().hex}.db")
    sender = WakeChannel(database, lambda: None)
    os.makedirs(sender.directory, mode=0o700, exist_ok=True)
    stale = os.path.join(sender.directory, "999999-dead")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(stale)
    sock.close()  # the file stays, nobody listens: as after kill -9
    sender.broadcast()
    assert not os.path.exists(stale)
    sender.close()


def test_close_removes_the_listener_socket(tmp_path: Path) -> None:
    database = str(tmp_path / f"{uuid.uuid4().hex}.db")
    channel = WakeChannel(database, lambda: None)
    channel.listen()
    assert os.listdir(channel.directory)
    channel.close()
    assert os.listdir(channel.directory) == []
