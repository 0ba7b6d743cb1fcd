"""The floor of grpcio's Python server: CPU per empty unary call, sync server vs ``grpc.aio``.

``python -m bench.grpc_floor [--calls N] [--concurrency 1,50] [--rounds R]`` starts a server
process per kind, and a plain grpcio client process that makes ``N`` empty unary calls to it,
one at a time (concurrency 1) or in waves of that many at once; it prints the server's CPU
time per call (from ``/proc``, between the client's first and last call) and the wall time
per call. The kinds, alternating in each round (compare ratios within one run on a loaded
machine):

- ``sync``: ``grpc.server`` with a thread pool, as ``treadle serve`` runs it;
- ``aio``: ``grpc.aio.server`` with an ``async def`` handler (what a port to asyncio could
  reach if no handler blocked);
- ``aio-executor``: ``grpc.aio.server`` with a plain handler run in its thread pool (what a
  handler that blocks on the store costs there).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import IO, Any

import grpc

from bench.procs import cpu_seconds

KINDS = ("sync", "aio", "aio-executor")
_METHOD = "/Floor/Hello"


def _same(data: bytes) -> bytes:
    return data


def _handler(behavior: Callable[..., Any]) -> grpc.GenericRpcHandler:
    method = grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=_same, response_serializer=_same
    )
    return grpc.method_handlers_generic_handler("Floor", {"Hello": method})


def _hello(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b""


async def _hello_async(request: bytes, context: Any) -> bytes:
    return b""


def _announce(port: int) -> None:
    print(port, flush=True)
    sys.stdin.readline()  # (the parent closes stdin to stop the server)


def _serve(kind: str) -> None:
    if kind == "sync":
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=256), handlers=[_handler(_hello)]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        _announce(port)
        server.stop(None)
        return

    async def main() -> None:
        if kind == "aio":
            server = grpc.aio.server(handlers=[_handler(_hello_async)])
        else:
            server = grpc.aio.server(futures.ThreadPoolExecutor(4), handlers=[_handler(_hello)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await asyncio.get_running_loop().run_in_executor(None, _announce, port)
        await server.stop(None)

    asyncio.run(main())


def _client(port: int, calls: int, concurrency: int) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(_METHOD, request_serializer=_same, response_deserializer=_same)
    for _ in range(100):  # warm up the connection
        call(b"")
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    if concurrency == 1:
        for _ in range(calls):
            call(b"")
    else:
        for _ in range(calls // concurrency):
            wave = [call.future(b"") for _ in range(concurrency)]
            for answer in wave:
                answer.result()
    print(time.perf_counter() - started, flush=True)


def _child(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _out(proc: subprocess.Popen[str]) -> IO[str]:
    assert proc.stdout is not None
    return proc.stdout


def _in(proc: subprocess.Popen[str]) -> IO[str]:
    assert proc.stdin is not None
    return proc.stdin


def measure(kind: str, calls: int, concurrency: int) -> tuple[float, float]:
    """(server CPU ms per call, wall ms per call) of ``calls`` empty calls to a ``kind``
    server."""
    me = [sys.executable, "-m", "bench.grpc_floor"]
    server = _child([*me, "--serve", kind])
    try:
        port = _out(server).readline().strip()
        client = _child(
            [*me, "--client", port, "--calls", str(calls), "--concurrency", str(concurrency)]
        )
        _out(client).readline()
        before = cpu_seconds(server.pid)
        _in(client).write("go\n")
        _in(client).flush()
        wall = float(_out(client).readline())
        cpu = cpu_seconds(server.pid) - before
        client.wait(30)
    finally:
        _in(server).close()
        server.wait(30)
    return cpu / calls * 1e3, wall / calls * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    """See the module."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,50", help="calls at once, e.g. 1,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.serve:
        _serve(opts.serve)
        return 0
    levels = [int(part) for part in opts.concurrency.split(",")]
    if opts.client:
        _client(opts.client, opts.calls, levels[0])
        return 0
    print(f"# {opts.calls} empty unary calls per run; grpcio {grpc.__version__}")
    for level in levels:
        for round_no in range(1, opts.rounds + 1):
            for kind in KINDS:
                cpu_ms, wall_ms = measure(kind, opts.calls, level)
                print(
                    f"concurrency {level:3d} round {round_no} {kind:13s} "
                    f"server CPU {cpu_ms:.3f} ms/call  wall {wall_ms:.3f} ms/call",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
