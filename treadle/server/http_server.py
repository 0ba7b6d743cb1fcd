"""An ASGI app served by uvicorn in a thread of its own (``treadle serve``, ``treadle
dashboard``)."""

from __future__ import annotations

import logging
import socket
import threading

from starlette.types import ASGIApp

from treadle.server.http_protocol import DEFAULT_READ_TIMEOUT_S

__all__ = ["HttpServer"]

logger = logging.getLogger(__name__)


class HttpServer:
    """uvicorn serving an ASGI app in a thread, on a socket bound up front (so port 0 works).

    Args:
        app: what to serve.
        host: the address to listen on.
        port: the port (0 or None: a free one; :attr:`port` says which).
        read_timeout_s: a connection that sends nothing for this long while a request of it
            is awaited is closed (see :mod:`treadle.server.http_protocol`).

    Raises:
        RuntimeError: the port cannot be bound.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int | None,
        *,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        import uvicorn

        from treadle.server.http_protocol import read_timeout_protocol

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port or 0))
        except OSError as exc:
            self._socket.close()
            raise RuntimeError(f"cannot listen on {host}:{port} for HTTP: {exc}") from exc
        self._socket.listen(1024)  # connections wait in the backlog until uvicorn runs
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=read_timeout_protocol(read_timeout_s),
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="treadle-http", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except Exception:
            logger.exception("the HTTP server stopped with an error")

    def start(self) -> None:
        """Serve (in a thread of its own)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
