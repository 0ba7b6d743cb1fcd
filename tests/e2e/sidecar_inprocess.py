"""``treadle serve``'s gRPC server and HTTP app in the test's own process, on any store.

:func:`in_process_sidecar` builds them as ``treadle serve`` does (a runtime whose remote
workers are the gRPC work-item streams), so a test can drive the server with treadle's own
stubs, as a fake SDK worker or as an attacker, and read the store directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc
import httpx
import pytest
from google.protobuf.message import Message

import treadle as wf
from treadle.clock import Clock
from treadle.server._proto import orchestrator_service_pb2_grpc as stubs
from treadle.server.grpc import create_server
from treadle.server.grpc_workers import SidecarWorkers
from treadle.server.http import create_app
from treadle.store import Store, open_store


@dataclass
class InProcessSidecar:
    """The server's parts over one store."""

    store: Store
    runtime: wf.WorkflowRuntime
    client: wf.WorkflowClient
    port: int
    app: Any
    channels: list[grpc.Channel] = field(default_factory=list)

    def stub(self, *, own_connection: bool = False) -> stubs.TaskHubSidecarServiceStub:
        """A stub on a new channel; ``own_connection`` gives it a TCP connection of its own
        (channels of one process otherwise share one, and so one peer address)."""
        options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=options)
        self.channels.append(channel)
        # (the generated stub module carries no annotations)
        return stubs.TaskHubSidecarServiceStub(channel)  # type: ignore[no-untyped-call]

    def http(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        """One request to the HTTP app."""

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await http.request(method, url, content=content)

        return anyio.run(call)


@contextlib.contextmanager
def in_process_sidecar(
    store_url: str,
    setup: Callable[[wf.WorkflowRuntime], None] | None = None,
    *,
    clock: Clock | None = None,
) -> Iterator[InProcessSidecar]:
    """Run the runtime, the gRPC server and the HTTP app on ``store_url``; ``setup`` may
    register local workflows and activities before the runtime starts; ``clock``: the
    runtime's clock (a :class:`~treadle.clock.ManualClock` holds back its periodic claims)."""
    store = open_store(store_url)
    workers = SidecarWorkers()
    runtime = wf.WorkflowRuntime(store, remote=workers, clock=clock)
    if setup is not None:
        setup(runtime)
    client = wf.WorkflowClient(store)
    server, port = create_server(runtime, client, workers, port=0)
    runtime.start()
    server.start()
    sidecar = InProcessSidecar(store, runtime, client, port, create_app(client))
    try:
        yield sidecar
    finally:
        for channel in sidecar.channels:
            channel.close()
        workers.close()
        server.stop(grace=None).wait(5)
        runtime.shutdown(timeout=2)
        store.close()


def grpc_error(method: Callable[..., Any], request: Message) -> grpc.RpcError:
    """The error a gRPC call fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=10)
    return info.value
