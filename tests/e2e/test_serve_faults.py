"""``treadle serve`` under callers that misbehave: they disconnect mid-body, stall halfway
through a request, or send gRPC bytes that are no protobuf message.

Regressions: a client that disconnected mid-body was logged as an ERROR with a traceback and
counted as a 500 in ``/metrics``; a connection that sent half a request was held for ever;
an undecodable gRPC message logged a traceback and was answered INTERNAL.
"""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from .helpers import wait_until
from .sidecar import Served, serve

START = "/v1.0/workflows/dapr/wf/start"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, "--http-read-timeout", "1") as server:
        yield server


def _connect(served: Served) -> socket.socket:
    assert served.http_port is not None
    sock = socket.create_connection(("127.0.0.1", served.http_port), timeout=10)
    return sock


def _metrics(served: Served) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{served.http_port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def _closed_within(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closed ``sock`` (reading whatever it sent first)."""
    began = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"the server still held the connection after {limit_s} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - began


def test_a_client_that_disconnects_mid_body_is_no_error(served: Served) -> None:
    sock = _connect(served)
    head = f"POST {START} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
    sock.sendall(head.encode() + b'{"partial":')
    time.sleep(0.2)  # the app is reading the body when the client goes
    sock.close()
    counted = re.compile(r'^treadle_http_requests_total\{.*status="499".*\} 1\.0$', re.M)
    wait_until(lambda: counted.search(_metrics(served)), what="the request counted as 499")
    text = _metrics(served)
    assert 'status="500"' not in text
    log = served.logs()
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "disconnected before sending the whole request" in log


@pytest.mark.parametrize(
    "sent",
    [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n",  # headers never finished
        b"POST " + START.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{",
        b"",  # connected, then nothing
    ],
    ids=["headers", "body", "nothing"],
)
def test_a_stalled_request_is_cut_off_by_the_read_timeout(served: Served, sent: bytes) -> None:
    sock = _connect(served)
    sock.sendall(sent)
    took = _closed_within(sock, 10.0)
    sock.close()
    assert 0.5 <= took <= 5.0, took
    log = served.logs()
    assert "read timeout" in log and "Traceback" not in log, log
    # a request that keeps sending, however slowly, is not cut off
    slow = _connect(served)
    parts = [b"GET /healthz HTTP/1.1\r\n", b"Host: t\r\n", b"Connection: close\r\n"]
    parts += [b"X-Slow: %d\r\n" % n for n in range(3)]
    for part in parts:  # 1.8 s in all, 0.3 s apart
        slow.sendall(part)
        time.sleep(0.3)
    slow.sendall(b"\r\n")
    slow.settimeout(10)
    assert slow.recv(4096).startswith(b"HTTP/1.1 200")
    slow.close()


def test_an_undecodable_grpc_message_is_invalid_argument_with_one_line(served: Served) -> None:
    garbage = b"\xff\xff\xff\xff"
    with grpc.insecure_channel(served.address) as channel:
        errors: dict[str, grpc.RpcError] = {}
        for method in ("StartInstance", "CompleteActivityTask"):
            unary: grpc.UnaryUnaryMultiCallable[bytes, bytes]
            unary = channel.unary_unary(f"/TaskHubSidecarService/{method}")
            with pytest.raises(grpc.RpcError) as info:
                unary(garbage, timeout=10)
            errors[method] = info.value
        stream: grpc.UnaryStreamMultiCallable[bytes, bytes]
        stream = channel.unary_stream("/TaskHubSidecarService/GetWorkItems")
        with pytest.raises(grpc.RpcError) as info:
            next(iter(stream(garbage, timeout=10)))
        errors["GetWorkItems"] = info.value
    for method, error in errors.items():
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, method
        assert "not a valid" in (error.details() or ""), error.details()
    log = served.logs()
    assert "Traceback" not in log and "Exception deserializing" not in log, log


def test_sigusr1_writes_every_threads_stack_to_the_log_and_serving_goes_on(
    served: Served,
) -> None:
    # what a person does with a server that seems stuck: kill -USR1 PID, then read its log
    served.proc.send_signal(signal.SIGUSR1)
    # (written by the handler, which the main thread runs within its half-second wait: it
    # comes)
    wait_until(
        lambda: "Stack of thread MainThread" in served.logs(),
        what="the stacks of the server's threads in its log",
        state=served.logs,
    )
    logs = served.logs()
    assert logs.count("Stack of thread treadle-") >= 2, logs
    assert 'File "' in logs
    assert served.proc.poll() is None
    assert "treadle_" in _metrics(served)  # (still serving; the fixture then stops it cleanly)
