"""Cross-process wake-ups for SQLite: datagrams between the processes on one file."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from treadle.store.sqlite.wake import WakeChannel

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")


def test_a_broadcast_wakes_the_other_listener_not_the_sender(tmp_path: Path) -> None:
    database = str(tmp_path / f"{uuid.uuid4().hex}.db")
    woken_a, woken_b = threading.Event(), threading.Event()
    kinds: list[tuple[bool, bool]] = []

    def wake_a(orchestrations: bool, activities: bool) -> None:
        kinds.append((orchestrations, activities))
        woken_a.set()

    a = WakeChannel(database, wake_a)
    b = WakeChannel(database, lambda orchestrations, activities: woken_b.set())
    try:
        a.listen()
        b.listen()
        assert woken_a.wait(5)  # b's hello woke a
        woken_a.clear()
        kinds.clear()
        b.broadcast()
        assert woken_a.wait(5)
        assert not woken_b.is_set()
        for orchestrations, activities in ((True, False), (False, True), (False, False)):
            woken_a.clear()
            b.broadcast(orchestrations, activities)  # both False: a change of status alone
            assert woken_a.wait(5)
        assert kinds == [(True, True), (True, False), (False, True), (False, False)]
    finally:
        a.close()
        b.close()


def test_sockets_left_by_dead_processes_are_removed(tmp_path: Path) -> None:
    database = str(tmp_path / f"{uuid.uuid4().hex}.db")
    sender = WakeChannel(database, lambda orchestrations, activities: None)
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
    channel = WakeChannel(database, lambda orchestrations, activities: None)
    channel.listen()
    assert os.listdir(channel.directory)
    channel.close()
    assert os.listdir(channel.directory) == []
