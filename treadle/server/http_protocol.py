"""The HTTP/1.1 connection protocol of ``treadle serve``: uvicorn's h11 protocol with a read
timeout.

uvicorn closes a keep-alive connection that stays idle between requests, but waits without
limit for the rest of a request that stopped halfway: its headers, or a body shorter than its
``Content-Length``. A client (or an attacker) that opens connections and stalls would hold
them for ever. Here a connection that sends nothing for ``read_timeout_s`` seconds while the
server waits for its request is closed (logged at INFO). Time the server spends on a request
it received whole (a long-poll, a slow store) does not count, nor does time it stops reading
itself (flow control while the app catches up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_READ_TIMEOUT_S", "read_timeout_protocol"]

logger = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT_S = 30.0
"""How long ``treadle serve`` waits by default for the next bytes of a request."""

_WAITING_FOR_CLIENT = (h11.IDLE, h11.SEND_BODY)
"""The client's h11 states in which the server waits for its bytes."""


def read_timeout_protocol(read_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol class, closing a request that stalls for ``read_timeout_s``.

    Raises:
        ValueError: ``read_timeout_s`` is not positive.
    """
    if not read_timeout_s > 0:
        raise ValueError(f"the HTTP read timeout must be > 0 seconds, got {read_timeout_s}")

    class ReadTimeoutProtocol(H11Protocol):
        """H11Protocol closing a connection whose request stalls (see the module)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._last_read = 0.0
            self._read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._last_read = self.loop.time()
            self._read_timer = self.loop.call_later(read_timeout_s, self._check_read)

        def data_received(self, data: bytes) -> None:
            self._last_read = self.loop.time()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            super().connection_lost(exc)

        def _check_read(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            now = self.loop.time()
            waiting = (
                self.conn.their_state in _WAITING_FOR_CLIENT
                and not self.flow.read_paused
                and self.timeout_keep_alive_task is None  # (idle between requests: uvicorn's)
            )
            if not waiting:
                self._last_read = now  # the clock starts when the server waits again
            elif now - self._last_read >= read_timeout_s:
                self._close_stalled()
                return
            delay = read_timeout_s - (now - self._last_read)
            self._read_timer = self.loop.call_later(max(delay, 0.01), self._check_read)

        def _close_stalled(self) -> None:
            where = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            phase = "body" if self.conn.their_state is h11.SEND_BODY else "request"
            logger.info(
                "closing the HTTP connection from %s: no bytes of its %s for %g s "
                "(the read timeout)",
                where,
                phase,
                read_timeout_s,
            )
            self.transport.close()  # a request under way sees the client disconnect

    return ReadTimeoutProtocol
