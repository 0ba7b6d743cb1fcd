"""Helpers for the ``treadle serve`` tests: the server as a child process, SDK scripts, stubs.

The official Dapr SDK cannot share a process with treadle's own generated protobuf modules, so
the SDK runs in child processes with the interpreter of the SDK venv (``tests/sdk_env.py``);
the tests themselves talk to the server with treadle's own stubs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from treadle.server._proto import orchestrator_service_pb2_grpc as stubs

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SDK_SCRIPTS = HERE / "sdk_scripts"
READY = re.compile(r"treadle serve: grpc (\S+):(\d+) http (?:(\S+):(\d+)|off)")
START_TIMEOUT_S = 30.0


def conformance_kit() -> Path:
    """The conformance kit (``shared/conformance`` beside the clone); skips if it is absent."""
    kit = REPO_ROOT.parent / "shared" / "conformance"
    if not (kit / "run_all.py").is_file():
        pytest.skip(
            f"the sidecar conformance kit is not at {kit} (CI puts a copy of shared/ beside "
            "the clone)"
        )
    return kit


@dataclass
class Served:
    """A running ``treadle serve`` child process.

    Attributes:
        proc: the process.
        grpc_port: its gRPC port.
        http_port: its HTTP port (None without HTTP).
        log: the file its stderr goes to.
        output: the lines it printed on stdout so far.
    """

    proc: subprocess.Popen[str]
    grpc_port: int
    http_port: int | None
    log: Path
    output: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """``127.0.0.1:<grpc port>``."""
        return f"127.0.0.1:{self.grpc_port}"

    def stub(self) -> stubs.TaskHubSidecarServiceStub:
        """A stub of treadle's own generated code, on a fresh channel."""
        channel = grpc.insecure_channel(self.address)
        # the generated gRPC code (treadle/server/_proto) has no annotations
        return stubs.TaskHubSidecarServiceStub(channel)  # type: ignore[no-untyped-call]

    def logs(self) -> str:
        """What the server wrote to stderr."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    db: str | None = None,
) -> Iterator[Served]:
    """Run ``treadle --db sqlite:///<tmp>/sidecar.db serve --grpc-port 0 --http-port 0 args``.

    Yields once it printed its ports; stops it with SIGTERM (SIGKILL if it hangs) afterwards
    and checks that it shut down cleanly.
    """
    db = db or f"sqlite:///{tmp_path / 'sidecar.db'}"
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*.log')))}.log"
    full_env = {k: v for k, v in os.environ.items() if k not in _TOKEN_VARS}
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "treadle.cli", "--db", db, "serve"]
    cmd += ["--grpc-port", "0", "--http-port", "0", *args]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=full_env, cwd=cwd
        )
    reader: list[threading.Thread] = []
    try:
        served = _wait_ready(proc, log, reader)
        yield served
    finally:
        trouble = _stop(proc)
        for thread in reader:
            thread.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert trouble is None, (
        f"treadle serve did not stop cleanly: {trouble}; its log:\n{log.read_text()}"
    )


_TOKEN_VARS = ("TREADLE_API_TOKEN", "DAPR_API_TOKEN")


def _wait_ready(proc: subprocess.Popen[str], log: Path, reader: list[threading.Thread]) -> Served:
    assert proc.stdout is not None
    lines: list[str] = []
    found: list[re.Match[str]] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not found:
                found.append(match)
                done.set()
        done.set()

    reader.append(threading.Thread(target=read, daemon=True))
    reader[0].start()
    done.wait(START_TIMEOUT_S)
    if not found:
        raise AssertionError(
            f"treadle serve did not print its ports; stdout: {lines}\nstderr:\n{log.read_text()}"
        )
    match = found[0]
    http = int(match.group(4)) if match.group(4) else None
    return Served(proc, int(match.group(2)), http, log, lines)


def _stop(proc: subprocess.Popen[str]) -> str | None:
    """Stop ``proc`` with SIGTERM; None if it exited cleanly, else what it did instead."""
    if proc.poll() is not None:
        return None if proc.returncode == 0 else f"it had already exited with {proc.returncode}"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # (every thread's stack into its log: where it hangs)
        time.sleep(2)
        proc.kill()
        proc.wait(10)
        return (
            "it was still running 30 s after SIGTERM (killed; the stacks of its threads, "
            "dumped just before, end its log)"
        )
    return None if code == 0 else f"it exited with {code} on SIGTERM"


@contextlib.contextmanager
def sdk_process(
    python: Path, script: str, *args: str, env: dict[str, str] | None = None, log: Path
) -> Iterator[subprocess.Popen[str]]:
    """Run ``sdk_scripts/<script> args`` with the SDK venv's python; kill it afterwards."""
    full_env = {k: v for k, v in os.environ.items() if k not in _TOKEN_VARS}
    full_env.update(env or {})
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(python), str(SDK_SCRIPTS / script), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def run_sdk(
    python: Path,
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run an SDK script to completion; return its result (stdout and stderr captured)."""
    full_env = {k: v for k, v in os.environ.items() if k not in _TOKEN_VARS}
    full_env.update(env or {})
    return subprocess.run(
        [str(python), str(SDK_SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def last_line(text: str) -> str:
    """The last non-empty line of ``text``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def describe(result: subprocess.CompletedProcess[str], served: Served | None = None) -> str:
    """A failure message with a script's output and the server's log."""
    text = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    if served is not None:
        text += f"\nserver log:\n{served.logs()[-4000:]}"
    return text


def kill_hard(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a process and reap it."""
    proc.kill()
    proc.wait(10)
