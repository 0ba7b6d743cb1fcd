"""``treadle serve``: the engine, the gRPC sidecar service and the HTTP API in one process.

:func:`run_server` opens the store, starts a :class:`~treadle.runtime.WorkflowRuntime` whose
remote hook is the gRPC work-item stream, and serves the durabletask gRPC API (for the Dapr
SDKs) and the Dapr workflow HTTP API until SIGINT or SIGTERM. Workflows and activities
registered with ``--app`` run in this process; every other name goes to the connected SDK
workers, waiting in a queue while none is connected.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from treadle.client import WorkflowClient
from treadle.core.records import record_class
from treadle.errors import InvalidInputError
from treadle.runtime import WorkflowRuntime
from treadle.runtime.loading import load_runtime
from treadle.runtime.logs import dump_stacks_on_sigusr1
from treadle.server.grpc import DEFAULT_MAX_PAYLOAD_BYTES, api_token_from_env, create_server
from treadle.server.grpc_workers import SidecarWorkers
from treadle.server.http import create_app
from treadle.server.http_protocol import DEFAULT_READ_TIMEOUT_S
from treadle.server.http_server import HttpServer
from treadle.server.metrics import ServerMetrics
from treadle.store import open_store, redact_url

__all__ = ["ServeOptions", "load_app_runtime", "run_server"]

logger = logging.getLogger(__name__)


@record_class
class ServeOptions:
    """What ``treadle serve`` serves, and where.

    Attributes:
        db: the store URL.
        host: the address both servers listen on.
        grpc_port: the gRPC port (0 picks a free one).
        http_port: the HTTP port (0 picks a free one; None serves no HTTP).
        app: ``MODULE:RUNTIME`` of a runtime whose workflows and activities run in-process.
        app_id: the app served (one sidecar per app, all on one store): its runtime takes
            that app's work only, and the instances started through it belong to it. None:
            ``$TREADLE_APP_ID``, else ``$APP_ID``, else none.
        max_payload_bytes: the largest request body or message accepted.
        api_token: the token every call must carry (None: the environment's
            ``TREADLE_API_TOKEN`` / ``DAPR_API_TOKEN``, or none).
        shutdown_timeout_s: how long running activities may finish on shutdown.
        http_read_timeout_s: how long an HTTP connection may go without sending a byte while
            the server waits for its request (headers or body) before it is closed.
        metrics_port: also serve the Prometheus metrics on this port (0: a free one), besides
            the HTTP API's ``/metrics``; None: not.
        metrics_host: the address of ``metrics_port`` (None: ``host``).
        tracing: emit OpenTelemetry spans to the global tracer provider, and carry the W3C
            trace context to and from the SDKs (see :mod:`treadle.runtime.tracing`).
        activity_limits: activities its SDK workers run, each with how many may run at once
            across every worker of the store (``--activity-limit NAME=N``: the activity goes
            on the queue ``activity:NAME``, as ``register_activity(fn, concurrency=N)`` puts it).
    """

    db: str
    host: str = "127.0.0.1"
    grpc_port: int = 50001
    http_port: int | None = 3500
    app: str | None = None
    app_id: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    api_token: str | None = None
    shutdown_timeout_s: float = 10.0
    http_read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    metrics_port: int | None = None
    metrics_host: str | None = None
    tracing: bool = False
    activity_limits: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port", "metrics_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535, got {port}")
        if self.max_payload_bytes < 1:
            raise ValueError("max_payload_bytes must be >= 1")
        if not self.http_read_timeout_s > 0:
            raise ValueError(
                f"http_read_timeout_s must be > 0 seconds, got {self.http_read_timeout_s}"
            )


def load_app_runtime(target: str) -> WorkflowRuntime:
    """Import ``MODULE:RUNTIME`` for ``--app`` and return the runtime.

    Raises:
        InvalidInputError: as :func:`treadle.runtime.loading.load_runtime`, naming ``--app``.
    """
    try:
        return load_runtime(target)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--app: {exc}") from exc


def run_server(
    options: ServeOptions,
    *,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set), then shut down cleanly.

    Prints ``treadle serve: grpc HOST:PORT http HOST:PORT`` (``http off`` without HTTP) once
    both servers listen, with the ports actually bound (and ``metrics: URL`` with
    ``metrics_port``).

    Raises:
        InvalidInputError: a bad ``--app``.
        RuntimeError: a port cannot be bound.
    """
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _setter(stop))
        dump_stacks_on_sigusr1()
    token = options.api_token or api_token_from_env()
    store = open_store(options.db)
    workers = SidecarWorkers()
    runtime = WorkflowRuntime(
        store,
        remote=workers,
        max_concurrent_activities=256,
        app_id=options.app_id,
        # served with the server's at /metrics (and on metrics_port)
        metrics=options.http_port is not None or options.metrics_port is not None,
        tracing=options.tracing,
    )
    if options.app:
        runtime.register_from(load_app_runtime(options.app))
    for name, concurrency in options.activity_limits:
        runtime.limit_activity(name, concurrency=concurrency)
    client = WorkflowClient(store, app_id=runtime.app_id)
    grpc_server, grpc_port = create_server(
        runtime,
        client,
        workers,
        host=options.host,
        port=options.grpc_port,
        max_payload_bytes=options.max_payload_bytes,
        api_token=token,
    )
    http: HttpServer | None = None
    metrics: ServerMetrics | None = None
    if runtime.metrics is not None:
        metrics = ServerMetrics(client, runtime=runtime.metrics)
    try:
        if options.http_port is not None:
            http = HttpServer(
                create_app(
                    client,
                    api_token=token,
                    max_body_bytes=options.max_payload_bytes,
                    lookup=runtime.registered_workflow,
                    metrics=metrics,
                ),
                options.host,
                options.http_port,
                read_timeout_s=options.http_read_timeout_s,
            )
        runtime.start()
        grpc_server.start()
        if http is not None:
            http.start()
        http_where = f"{options.host}:{http.port}" if http is not None else "off"
        metrics_where = _serve_metrics(metrics, options)
        echo(f"treadle serve: grpc {options.host}:{grpc_port} http {http_where}")
        if metrics_where is not None:
            echo(f"metrics: {metrics_where}")
        echo(f"store: {redact_url(store.url)}; auth: {'api token' if token else 'none'}")
        if runtime.app_id:
            echo(f"app id: {runtime.app_id}")
        if options.app:
            echo(f"in-process workflows: {', '.join(runtime.workflow_names) or '(none)'}")
            echo(f"in-process activities: {', '.join(runtime.activity_names) or '(none)'}")
        while not stop.wait(0.5):
            pass
        echo("treadle serve: shutting down")
    finally:
        workers.close()
        grpc_server.stop(grace=2.0).wait(5.0)
        if http is not None:
            http.stop()
        if metrics is not None:
            metrics.close()
        runtime.shutdown(timeout=options.shutdown_timeout_s)
        store.close()
    echo("treadle serve: stopped")


def _serve_metrics(metrics: ServerMetrics | None, options: ServeOptions) -> str | None:
    """Serve ``metrics`` on ``options.metrics_port``, if given; the URL.

    Raises:
        RuntimeError: the port cannot be bound.
    """
    if metrics is None or options.metrics_port is None:
        return None
    host = options.metrics_host or options.host
    try:
        port = metrics.serve(options.metrics_port, host)
    except OSError as exc:
        raise RuntimeError(f"cannot serve metrics on {host}:{options.metrics_port}: {exc}") from exc
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/metrics"


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return handler
