"""Abuse of the servers: ``treadle serve`` (a real process, with an API token) on each store,
fuzzed on every HTTP route its OpenAPI document (``GET /openapi.json``) lists and on every
method of its gRPC service, thousands of requests; and the auth matrix on every route and
method (no token, a wrong token).

Required: no 5xx answer, no INTERNAL (nor UNKNOWN) status, no success without the token on
any route that asks for one. The server's log is searched for tracebacks as well.

Requests are generated from a seeded random source (``TREADLE_RELIABILITY_SEED``): path
parameters and query values of every kind (NUL, control characters, very long, unicode,
numbers where text is wanted), bodies that are JSON of any shape or bytes that are not JSON;
gRPC requests are protobuf messages with random values in every field, or bytes that decode
as no message at all.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass

from treadle.server._proto import orchestrator_service_pb2 as pb

from .conftest import scaled
from .helpers import seed
from .ledger import emit_line
from .procs import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

TOKEN = "reliability-s3cret"
HTTP_REQUESTS = 3000
GRPC_CALLS = 1500
SERVICE = pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"]
BAD_GRPC = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class Served:
    """``treadle serve`` in a process of its own."""

    def __init__(self, store_url: str, directory: Path) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self.log = directory / "serve.log"
        env = {**os.environ, "TREADLE_STORE": store_url, "TREADLE_API_TOKEN": TOKEN}
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from treadle.cli import main; main()",
                "serve",
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
                "--http-read-timeout",
                "5",
            ],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"treadle serve did not come up:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


# ---- values of every kind -----------------------------------------------------------------
def _text(rng: random.Random) -> str:
    choices = [
        "",
        "a",
        "x" * rng.choice([255, 256, 257, 5000]),
        "hello\x00x",
        "\x00",
        "../../etc/passwd",
        "%00",
        "%2e%2e%2f",
        "é€😀",
        "\u202e",
        "' OR 1=1 --",
        "<script>",
        " ",
        "\t\n\r",
        "-1",
        "99999999999999999999999",
        "1e308",
        "NaN",
        "null",
        "true",
        "{}",
        "[]",
        json.dumps({"a": [1, 2, {"b": None}]}),
    ]
    if rng.random() < 0.3:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 40)))
    return rng.choice(choices)


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**31, 2**63, 2**80, -(2**70)])
    if kind == 3:
        return rng.choice([0.5, 1e308, -1e-308])
    if kind == 4:
        return _text(rng)
    if kind == 5:
        return [_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_text(rng)[:20]: _json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if roll < 0.25:
        return b'{"unterminated": '
    if roll < 0.3:
        return b"\xff\xfe" + "x".encode("utf-16-le")
    value = _json(rng)
    try:
        return json.dumps(value).encode()
    except ValueError:
        return b"null"


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in sorted(document["paths"].items())
        for method, operation in sorted(item.items())
    ]


def _request(
    rng: random.Random, path: str, operation: dict[str, Any]
) -> tuple[str, dict[str, str], bytes | None]:
    url = re.sub(r"{(\w+)}", lambda m: quote(_text(rng), safe="") or "x", path)
    params: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query" and rng.random() < 0.7:
            params[parameter["name"]] = (
                _text(rng) if rng.random() < 0.7 else str(rng.randrange(-5, 10**6))
            )
    body = _body(rng) if "requestBody" in operation or rng.random() < 0.2 else None
    return url, params, body


# ---- gRPC messages -------------------------------------------------------------------------
def _fill(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Any:
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if rng.random() < 0.4:
            continue
        repeated = field.is_repeated
        for _ in range(rng.randrange(3) if repeated else 1):
            value = _field_value(field, rng, depth)
            if value is None:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.message_type is None or field.message_type.GetOptions().map_entry:
                    continue
                target = getattr(message, field.name)
                (target.add() if repeated else target).CopyFrom(value)
            elif repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)
    return message


def _field_value(field: FieldDescriptor, rng: random.Random, depth: int) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        kind = field.message_type
        return _fill(kind, rng, depth + 1) if kind is not None and depth < 3 else None
    if t == FieldDescriptor.TYPE_STRING:
        return _text(rng)
    if t == FieldDescriptor.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(16)))
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        return rng.choice([v.number for v in enum.values]) if enum is not None else 0
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e30, float("inf")])
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1])
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice([0, 1, 2**64 - 1])
    if t in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return rng.choice([0, -1, 2**63 - 1, -(2**63)])
    return rng.choice([0, -1, 2**31 - 1, -(2**31)])


def _grpc_call(
    channel: grpc.Channel, method: Any, payload: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    name = f"/{SERVICE.full_name}/{method.name}"
    identity = lambda b: b  # noqa: E731
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                name, request_serializer=identity, response_deserializer=identity
            )
            call = stream(payload, metadata=metadata, timeout=0.3)  # (it waits for work)
            for _ in call:
                break
            call.cancel()
            return grpc.StatusCode.OK
        unary = channel.unary_unary(
            name, request_serializer=identity, response_deserializer=identity
        )
        unary(payload, metadata=metadata, timeout=2)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        code = exc.code()
        return grpc.StatusCode.CANCELLED if code is None else code


def test_fuzzed_routes_and_methods_give_no_5xx_no_internal_and_no_unauthenticated_success(
    store_url: str, tmp_path: Path
) -> None:
    backend = "postgres" if store_url.startswith("postgres") else "sqlite"
    rng = seed(f"server abuse on {backend}")
    served = Served(store_url, tmp_path)
    good = {"dapr-api-token": TOKEN}
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    problems: list[str] = []
    unauthenticated_successes = 0
    auth_checks = 0
    try:
        began = time.monotonic()
        with httpx.Client(base_url=served.base, timeout=30) as http:
            response = http.get("/openapi.json", headers=good)
            assert response.status_code == 200, (
                f"GET /openapi.json answered {response.status_code}: the server must publish "
                f"its OpenAPI document\n{response.text[:300]}"
            )
            operations = _operations(response.json())
            # -- the auth matrix: every route, no token and a wrong token ----------------------
            for path, method, operation in operations:
                url = re.sub(r"{(\w+)}", "x", path)
                for headers in ({}, {"dapr-api-token": "wrong"}, {"dapr-api-token": ""}):
                    auth_checks += 1
                    answer = http.request(method.upper(), url, headers=headers, content=b"{}")
                    needs = bool(operation.get("security", [{"daprApiToken": []}]))
                    if needs and answer.status_code < 400:
                        unauthenticated_successes += 1
                        problems.append(f"{method.upper()} {path} {headers}: {answer.status_code}")
                    statuses[answer.status_code] += 1
            # -- fuzzing, with the token ---------------------------------------------------
            for i in range(scaled(HTTP_REQUESTS, 100)):
                path, method, operation = operations[i % len(operations)]
                url, params, body = _request(rng, path, operation)
                try:
                    answer = http.request(
                        method.upper(), url, params=params, content=body, headers=good
                    )
                except httpx.HTTPError as exc:
                    problems.append(f"{method.upper()} {url}: {type(exc).__name__} {exc}")
                    statuses[-1] += 1
                    continue
                statuses[answer.status_code] += 1
                if answer.status_code >= 500:
                    problems.append(
                        f"{method.upper()} {url} {params}: {answer.status_code} {answer.text[:200]}"
                    )
        http_s = time.monotonic() - began
        # -- gRPC: the auth matrix, then fuzzing --------------------------------------------
        channel = grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}")
        methods = list(SERVICE.methods)
        for rpc in methods:
            empty = GetMessageClass(rpc.input_type)().SerializeToString()
            for metadata in ((), (("dapr-api-token", "wrong"),)):
                auth_checks += 1
                code = _grpc_call(channel, rpc, empty, metadata)
                codes[code.name] += 1
                if code is not grpc.StatusCode.UNAUTHENTICATED:
                    unauthenticated_successes += 1
                    problems.append(f"gRPC {rpc.name} {metadata}: {code.name}")
        for i in range(scaled(GRPC_CALLS, 50)):
            rpc = methods[i % len(methods)]
            if rng.random() < 0.15:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            else:
                payload = _fill(rpc.input_type, rng).SerializeToString()
            code = _grpc_call(channel, rpc, payload, (("dapr-api-token", TOKEN),))
            codes[code.name] += 1
            if code in BAD_GRPC:
                problems.append(f"gRPC {rpc.name}: {code.name} for {payload[:80]!r}")
        channel.close()
        grpc_s = time.monotonic() - began - http_s
    finally:
        served.stop()
    log = served.log.read_text(errors="replace")
    tracebacks = log.count("Traceback (most recent call last)")
    line = json.dumps(
        {
            "test": "server_abuse",
            "store": backend,
            "http_requests": sum(statuses.values()),
            "grpc_calls": sum(codes.values()),
            "http_5xx": sum(n for s, n in statuses.items() if s >= 500),
            "http_transport_errors": statuses.get(-1, 0),
            "grpc_internal": sum(codes.get(c.name, 0) for c in BAD_GRPC),
            "auth_checks": auth_checks,
            "unauthenticated_successes": unauthenticated_successes,
            "server_tracebacks": tracebacks,
            "http_s": round(http_s, 1),
            "grpc_s": round(grpc_s, 1),
            "http_statuses": dict(sorted(statuses.items())),
            "grpc_codes": dict(sorted(codes.items())),
        }
    )
    emit_line(line)
    detail = line + "\n" + "\n".join(problems[:30]) + "\n" + log[-3000:]
    assert unauthenticated_successes == 0, detail
    assert not any(s >= 500 or s == -1 for s in statuses), detail
    assert not any(codes.get(c.name) for c in BAD_GRPC), detail
    assert tracebacks == 0, detail
