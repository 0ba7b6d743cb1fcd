"""``treadle dashboard``: the web dashboard alone, for a store (no gRPC, no workers)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from treadle.client import WorkflowClient
from treadle.server.dashboard import create_dashboard
from treadle.server.http_server import HttpServer
from treadle.store import open_store, redact_url

__all__ = ["run_dashboard"]


def run_dashboard(
    db: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_token: str | None = None,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve the dashboard of the store at ``db`` until SIGINT/SIGTERM (or ``stop``).

    Prints ``treadle dashboard: http://HOST:PORT/`` once listening, with the port bound.

    Args:
        db: the store URL.
        host: the address to listen on.
        port: the port (0 picks a free one).
        api_token: ask for this token (None: ``TREADLE_API_TOKEN`` or ``DAPR_API_TOKEN``, as
            ``treadle serve``; none if neither is set).

    Raises:
        RuntimeError: the port cannot be bound.
    """
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _setter(stop))
    token = api_token or os.environ.get("TREADLE_API_TOKEN") or os.environ.get("DAPR_API_TOKEN")
    store = open_store(db)
    client = WorkflowClient(store)
    try:
        server = HttpServer(create_dashboard(client, api_token=token), host, port)
        server.start()
        shown = f"[{host}]" if ":" in host else host
        echo(f"treadle dashboard: http://{shown}:{server.port}/")
        echo(f"store: {redact_url(store.url)}; auth: {'api token' if token else 'none'}")
        try:
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        client.close()
        store.close()
    echo("treadle dashboard: stopped")


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        """Stop serving."""
        stop.set()

    return handler
