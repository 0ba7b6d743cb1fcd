"""The transport floor of one workflow step through ``treadle serve``: grpcio's sync server doing
what a step asks of it, and nothing else.

A step through the sidecar is two unary calls from the SDK (``CompleteOrchestratorTask`` and
``CompleteActivityTask``), each of which makes the server send one message on the SDK's
``GetWorkItems`` stream (the activity, then the next turn) from the thread that serves the
stream. This measures exactly that shape with empty handlers: a server whose unary ``Poke``
hands a message to a stream thread waiting on a condition (as ``SidecarWorkers`` does), and a
client that pokes and reads the message back, twice per step, one step at a time::

    python -m bench.grpc_step_floor [--steps N] [--rounds R] [--size BYTES]
        [--option NAME=VALUE ...] [--callgrind OUT]

It prints the server's CPU time per step (from ``/proc``, between the first and the last
step). With ``--option``, each round also runs a server created with those grpcio channel
options, alternating with the plain one. With ``--callgrind OUT``, the server runs under
valgrind's callgrind (its counters zeroed when the steps start, dumped when they end) and the
instruction count per step is printed (one round, plain server).

Threads: the driver's only; the server's handlers run on grpcio's thread pool.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc

from bench.grpc_floor import _child, _in, _out
from bench.procs import cpu_seconds

_SERVICE = "StepFloor"


def _same(data: bytes) -> bytes:
    return data


class _Streams:
    """Messages handed from the unary handlers to the stream handler."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self.size = 0

    def poke(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """A unary call: queue one message for the stream."""
        with self._cond:
            self._queue.append(b"x" * self.size)
            self._cond.notify()
        return b""

    def items(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The stream: each queued message, as it comes."""
        while context.is_active():
            with self._cond:
                if not self._queue:
                    self._cond.wait(0.5)
                if not self._queue:
                    continue
                item = self._queue.popleft()
            yield item


def _serve(size: int, options: list[tuple[str, Any]]) -> None:
    streams = _Streams()
    streams.size = size
    methods = {
        "Poke": grpc.unary_unary_rpc_method_handler(
            streams.poke, request_deserializer=_same, response_serializer=_same
        ),
        "Items": grpc.unary_stream_rpc_method_handler(
            streams.items, request_deserializer=_same, response_serializer=_same
        ),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=256),
        handlers=[grpc.method_handlers_generic_handler(_SERVICE, methods)],
        options=options,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    sys.stdin.readline()  # (the parent closes stdin to stop the server)
    server.stop(None)


def _client(port: int, steps: int, size: int) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    poke = channel.unary_unary(
        f"/{_SERVICE}/Poke", request_serializer=_same, response_deserializer=_same
    )
    stream = channel.unary_stream(
        f"/{_SERVICE}/Items", request_serializer=_same, response_deserializer=_same
    )(b"")
    answer = b"y" * size

    def step() -> None:
        for _ in range(2):  # the turn's answer, then the activity's result
            poke(answer)
            next(stream)

    for _ in range(50):  # warm up
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    print(time.perf_counter() - started, flush=True)
    stream.cancel()
    channel.close()


def measure(
    steps: int, size: int, options: Sequence[str], callgrind: str | None = None
) -> tuple[float, float]:
    """(server CPU ms per step, wall ms per step) of ``steps`` steps; with ``callgrind``, the
    server runs under callgrind writing to that file (the CPU figure is then valgrind's)."""
    me = [sys.executable, "-m", "bench.grpc_step_floor", "--size", str(size)]
    for option in options:
        me += ["--option", option]
    prefix = []
    if callgrind is not None:
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}"]
    server = _child([*prefix, *me, "--serve"])
    try:
        port = ""
        while not port.startswith("port "):
            port = _out(server).readline()
        client = _child([*me, "--client", port.split()[1], "--steps", str(steps)])
        _out(client).readline()
        if callgrind is not None:
            subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True)
        before = cpu_seconds(server.pid)
        _in(client).write("go\n")
        _in(client).flush()
        wall = float(_out(client).readline())
        cpu = cpu_seconds(server.pid) - before
        if callgrind is not None:
            subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True)
        client.wait(60)
    finally:
        _in(server).close()
        server.wait(60)
    return cpu / steps * 1e3, wall / steps * 1e3


def _option(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    return name, int(value) if value.lstrip("-").isdigit() else value


def _instructions(path: str) -> int:
    """The instruction count of the last dump callgrind wrote for ``path``."""
    total = 0
    for suffix in (".1", ""):
        try:
            with open(path + suffix) as dump:
                for line in dump:
                    if line.startswith("summary:"):
                        total = int(line.split()[1])
        except OSError:
            continue
        if total:
            return total
    return total


def main(argv: Sequence[str] | None = None) -> int:
    """See the module."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_step_floor")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=200, help="bytes of each message")
    parser.add_argument("--option", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--callgrind", help="run the server under callgrind, dump to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.serve:
        _serve(opts.size, [_option(o) for o in opts.option])
        return 0
    if opts.client:
        _client(opts.client, opts.steps, opts.size)
        return 0
    print(f"# {opts.steps} steps (2 unary calls + 2 stream messages of {opts.size} B each) per run;"
          f" grpcio {grpc.__version__}")  # fmt: skip
    if opts.callgrind:
        measure(opts.steps, opts.size, [], opts.callgrind)
        per_step = _instructions(opts.callgrind) / opts.steps
        print(f"callgrind: {per_step / 1e6:.3f} M instructions per step", flush=True)
        return 0
    variants: list[Sequence[str]] = [[]]
    if opts.option:
        variants.append(opts.option)
    for round_no in range(1, opts.rounds + 1):
        for variant in variants:
            cpu_ms, wall_ms = measure(opts.steps, opts.size, variant)
            label = " ".join(variant) or "plain"
            print(
                f"round {round_no} {label:40s} server CPU {cpu_ms:.3f} ms/step  "
                f"wall {wall_ms:.3f} ms/step",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
