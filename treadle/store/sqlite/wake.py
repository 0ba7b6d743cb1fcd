"""Cross-process wake-ups for one SQLite file: Unix datagram sockets in a private directory.

Every process that waits for changes binds a socket in ``$TMPDIR/treadle-wake-<hash>/``;
a process that commits something others act on sends each of them a one-byte datagram, and
their listener thread wakes the waiters. A process that cannot (no ``AF_UNIX``, a directory
it may not use) falls back to ``PRAGMA data_version`` polling, which always runs too.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable

logger = logging.getLogger(__name__)

_HELLO = b"h"
_WAKE = b"w"  # new work of any kind
_KINDS = {  # payload -> (instances to claim, activities to claim)
    _WAKE: (True, True),
    b"o": (True, False),
    b"a": (False, True),
    b"s": (False, False),  # a change of status alone: for clients, not workers
}
_PAYLOADS = {kinds: payload for payload, kinds in _KINDS.items()}
_LISTING_TTL_S = 1.0


class WakeChannel:
    """Wake-ups between the processes that use one database file.

    Args:
        database: the database file's absolute path.
        on_wake: called (from the listener thread) when another process says something
            changed, with whether there may be instances and activities to claim (both
            False for a change of status alone).
    """

    def __init__(self, database: str, on_wake: Callable[[bool, bool], None]) -> None:
        digest = hashlib.sha1(database.encode(), usedforsecurity=False).hexdigest()[:16]
        self.directory = os.path.join(tempfile.gettempdir(), f"treadle-wake-{digest}")
        self._on_wake = on_wake
        self._lock = threading.Lock()
        self._own: str | None = None
        self._listener: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._peers: list[str] = []
        self._listed_at = -_LISTING_TTL_S
        self._usable = hasattr(socket, "AF_UNIX")
        self._closed = False

    def listen(self) -> None:
        """Start receiving wake-ups in this process (idempotent; nothing once closed)."""
        with self._lock:
            if self._listener is not None or not self._usable or self._closed:
                return
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
                path = os.path.join(self.directory, name)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(path)
            except OSError as exc:
                logger.debug("no cross-process wake-ups for %s: %s", self.directory, exc)
                self._usable = False
                return
            self._own, self._listener = name, sock
        atexit.register(self.close)
        thread = threading.Thread(target=self._receive, name="treadle-sqlite-wake", daemon=True)
        thread.start()
        self._send(_HELLO)  # others refresh their list of peers and include us at once

    @property
    def listening(self) -> bool:
        """Whether this process receives the others' wake-ups."""
        return self._listener is not None

    def broadcast(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Tell the other processes' waiters that something changed: instances or activities
        to claim, or (both False) a status alone, which concerns clients, not workers."""
        if self._usable and not self._closed:
            self._send(_PAYLOADS[(orchestrations, activities)])

    def close(self) -> None:
        """Stop listening and sending, and remove this process's socket, for good."""
        atexit.unregister(self.close)
        with self._lock:
            self._closed = True
            sock, self._listener = self._listener, None
            own, self._own = self._own, None
            sender, self._sender = self._sender, None
        for each in (sock, sender):
            if each is not None:
                each.close()
        if own is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, own))

    def _receive(self) -> None:
        while True:
            sock = self._listener
            if sock is None:
                return
            try:
                data = sock.recv(16)
            except OSError:
                return
            if data == _HELLO:
                self._listed_at = -_LISTING_TTL_S
            self._on_wake(*_KINDS.get(data, (True, True)))

    def _send(self, payload: bytes) -> None:
        now = time.monotonic()
        if now - self._listed_at > _LISTING_TTL_S or payload == _HELLO:
            try:
                self._peers = sorted(os.listdir(self.directory))
            except OSError:
                self._peers = []
            self._listed_at = now
        if not self._peers:
            return
        with self._lock:
            if self._closed:
                return
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            sender = self._sender
        for name in self._peers:
            if name == self._own:
                continue
            path = os.path.join(self.directory, name)
            try:
                sender.sendto(payload, path)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):  # a process that died without cleaning up
                    os.unlink(path)
                self._listed_at = -_LISTING_TTL_S
            except OSError:
                pass  # its buffer is full: it has wake-ups to read already
