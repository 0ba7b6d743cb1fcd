"""W1a, W1b and W3 through ``treadle serve`` with an official Dapr SDK (``--sdk python|js``).

The SDK runs as its users run it: a process with a workflow client and a worker
(``bench/sdk_app.py`` with the Python SDK's interpreter, ``bench/sdk_app.js`` with Node.js and
``@dapr/durabletask-js``), talking gRPC to a ``treadle serve`` child on a fresh store. W1b
also runs with several SDK worker processes and a separate client process (``--workers``).
Besides the wall figures, each run prints the CPU time per workflow step (per activity) of
the server and of the SDK processes, read from ``/proc/<pid>/stat`` between the moment the
SDK is ready and the moment it reports, and how busy the two were: throughput on a small
machine is bounded by the CPU they need together.

Where the SDK is: the Python SDK in the virtual environment at ``$TREADLE_SDK_VENV`` or
``<repo>/.sdk-venv`` (``python tests/sdk_env.py`` builds it); the JS SDK in
``$TREADLE_JS_SDK_DIR`` or ``<repo>/.js-sdk`` (``node_modules/@dapr/durabletask-js``, installed
by ``tests/e2e/test_sidecar_js.py``). Without it, the SDK runs are skipped with a reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import BENCH_ROOT, child_env, cpu_seconds, peak_rss_mib
from bench.report import median, percentile
from bench.workloads import Bench, BenchError

TOPOLOGY = (
    "treadle: the engine embedded in worker processes; the SDK: its own client and worker "
    "through treadle serve; lower is better for times and CPU"
)

_READY = re.compile(r"treadle serve: grpc (\S+):(\d+)")
_SDK_READY = re.compile(r"^READY$")
_JSON = re.compile(r"^\{")  # (the JS SDK logs on stdout too)
_JS_SDK = "@dapr/durabletask-js"


def sdk_command(sdk: str) -> tuple[list[str], dict[str, str]] | str:
    """How to run ``bench/sdk_app.*`` with ``sdk``: (argv prefix, extra environment), or why
    it cannot run here."""
    if sdk == "python":
        configured = os.environ.get("TREADLE_SDK_VENV")
        venv = Path(configured) if configured else BENCH_ROOT / ".sdk-venv"
        python = venv / "bin" / "python"
        if not python.exists():
            return (
                f"no Dapr Python SDK environment at {venv} (build it with "
                "`python tests/sdk_env.py`, or set TREADLE_SDK_VENV)"
            )
        return [str(python), str(BENCH_ROOT / "bench" / "sdk_app.py")], {}
    node = shutil.which("node")
    root = Path(os.environ.get("TREADLE_JS_SDK_DIR") or BENCH_ROOT / ".js-sdk")
    modules = root / "node_modules"
    if node is None:
        return "node is not on the PATH"
    if not (modules / _JS_SDK / "package.json").is_file():
        return (
            f"no {_JS_SDK} in {modules} (tests/e2e/test_sidecar_js.py installs it; or set "
            "TREADLE_JS_SDK_DIR)"
        )
    return [node, str(BENCH_ROOT / "bench" / "sdk_app.js")], {"NODE_PATH": str(modules)}


class _Proc:
    """A child process that prints ``READY``, then lines of JSON."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path = BENCH_ROOT,
    ) -> None:
        self.log = log
        self._log = log.open("wb")
        full_env = child_env()
        full_env.update(env or {})
        for name in ("TREADLE_API_TOKEN", "DAPR_API_TOKEN"):
            full_env.pop(name, None)
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=full_env,
            cwd=cwd,
            text=True,
        )

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    def read_line(self, timeout_s: float, pattern: re.Pattern[str] | None = None) -> str:
        """The next line on its stdout (matching ``pattern``, if given).

        Raises:
            BenchError: it exited or printed nothing in time.
        """
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], 0.2)
            if not ready:
                continue
            line = stdout.readline()
            if not line:
                break
            if pattern is None or pattern.search(line):
                return line.strip()
        raise BenchError(f"{self.describe()} printed no expected line in time: {self.tail()}")

    def send(self, text: str) -> None:
        """Write a line to its stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """Close its stdin (an SDK worker then shuts down)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Terminate it (kill if it hangs) and reap it."""
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def describe(self) -> str:
        """Its command and pid."""
        args = list(self.proc.args)  # type: ignore[arg-type]
        return f"{Path(str(args[1] if len(args) > 1 else '?')).name} (pid {self.pid})"

    def tail(self, lines: int = 15) -> str:
        """The last lines of its stderr."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@contextlib.contextmanager
def served(
    url: str, work_dir: Path, tag: str, tree: Path | None = None
) -> Iterator[tuple[_Proc, str]]:
    """``treadle serve`` on ``url`` (gRPC on a free port, no HTTP), from the treadle source
    tree ``tree`` (None: the one the bench runs); (process, address)."""
    argv = [sys.executable, "-m", "treadle.cli", "--db", url, "serve"]
    env = None
    cwd = BENCH_ROOT
    if tree is not None:
        # `python -m` puts its working directory first on sys.path, before PYTHONPATH: run
        # in the other tree, else the server would import this tree's treadle.
        cwd = tree.resolve()
        env = {"PYTHONPATH": f"{cwd}{os.pathsep}{BENCH_ROOT}"}
    server = _Proc(
        [*argv, "--grpc-port", "0", "--no-http"], work_dir / f"{tag}-serve.log", env, cwd
    )
    try:
        line = server.read_line(60.0, _READY)
        match = _READY.search(line)
        assert match is not None
        yield server, f"{match.group(1)}:{match.group(2)}"
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class SdkRun:
    """What one run through the SDK measured.

    Attributes:
        result: the client's JSON (wall figures, its own activity count).
        wall_s: from sending the go-ahead to receiving the result.
        server_cpu_s: CPU time of ``treadle serve`` over that span.
        sdk_cpu_s: CPU time of every SDK process over that span.
        activities: activity executions counted by the SDK processes.
        per_worker: activity executions of each worker process (several workers).
        server_peak_mib: the server's peak RSS.
    """

    result: dict[str, Any]
    wall_s: float
    server_cpu_s: float
    sdk_cpu_s: float
    activities: int
    per_worker: list[int]
    server_peak_mib: float


def run_sdk(
    bench: Bench,
    sdk: str,
    workload: str,
    tag: str,
    args: Sequence[str],
    *,
    workers: int = 1,
    tree: Path | None = None,
) -> SdkRun:
    """Run ``workload`` through ``treadle serve`` on a fresh store with ``sdk``: one process
    with a client and a worker, or (``workers`` > 1) a client process and that many worker
    processes. ``tree``: run ``treadle serve`` from that source tree (an A/B).

    Raises:
        BenchError: the SDK is not usable, or a process failed.
    """
    command = sdk_command(sdk)
    if isinstance(command, str):
        raise BenchError(command)
    argv, env = command
    work = bench.target.work_dir
    timeout_s = bench.sizes.timeout_s
    if tree is not None:
        tag = f"{tag}_ab"
    with served(bench.target.new_url(tag), work, tag, tree) as (server, address):
        common = [*argv, "--address", address, "--timeout", str(timeout_s)]
        pool: list[_Proc] = []
        client: _Proc | None = None
        try:
            if workers > 1:
                for i in range(workers):
                    pool.append(_Proc([*common, "--role", "worker"], work / f"{tag}-w{i}.log", env))
                for proc in pool:
                    proc.read_line(60.0, _SDK_READY)
            role = "both" if workers == 1 else "client"
            client = _Proc(
                [*common, "--role", role, "--workload", workload, *args],
                work / f"{tag}-client.log",
                env,
            )
            client.read_line(60.0, _SDK_READY)
            sdk_pids = [client.pid, *(p.pid for p in pool)]
            server_before = cpu_seconds(server.pid)
            sdk_before = sum(cpu_seconds(pid) for pid in sdk_pids)
            start = time.perf_counter()
            client.send("go")
            result: dict[str, Any] = json.loads(client.read_line(timeout_s * 2, _JSON))
            wall_s = time.perf_counter() - start
            server_cpu = cpu_seconds(server.pid) - server_before
            sdk_cpu = sum(cpu_seconds(pid) for pid in sdk_pids) - sdk_before
            peak = peak_rss_mib(server.pid) or 0.0
            per_worker: list[int] = []
            for proc in pool:
                proc.close_stdin()
                per_worker.append(int(json.loads(proc.read_line(60.0, _JSON))["activities"]))
        finally:
            for proc in [*pool, *([client] if client is not None else [])]:
                proc.stop()
    activities = int(result.get("activities", 0)) + sum(per_worker)
    return SdkRun(result, wall_s, server_cpu, sdk_cpu, activities, per_worker, peak)


def _add_cpu(bench: Bench, workload: str, run: SdkRun, steps: int, size: int, workers: int) -> None:
    """The server's and the SDK's CPU per step, and how busy they kept the machine."""
    busy = (run.server_cpu_s + run.sdk_cpu_s) / run.wall_s if run.wall_s else 0.0
    cores = os.cpu_count() or 1
    bench.add(
        workload,
        "server CPU per step",
        run.server_cpu_s / steps * 1e3,
        "ms",
        size=size,
        workers=workers,
        better="lower",
        note=f"treadle serve: {run.server_cpu_s:.2f} s CPU for {steps:,} steps",
        pairs_with="worker CPU per step",
    )
    bench.add(
        workload,
        "SDK CPU per step",
        run.sdk_cpu_s / steps * 1e3,
        "ms",
        size=size,
        workers=workers,
        better="lower",
        note=(
            f"{run.sdk_cpu_s:.2f} s CPU; server and SDK busy {busy:.2f} of {cores} cores "
            f"over {run.wall_s:.2f} s"
        ),
    )


def _check_count(run: SdkRun, expected: int, what: str) -> None:
    if run.activities != expected:
        raise BenchError(
            f"{what}: the SDK processes ran {run.activities} activities, expected exactly "
            f"{expected} (lost or repeated work)"
        )


def sdk_w1a(bench: Bench, sdk: str, tree: Path | None = None) -> None:
    """W1a through the SDK: one task chain at a time; median and p99 latency, CPU per step."""
    sizes = bench.sizes
    args = ["--size", str(sizes.w1a_runs), "--warmup", str(sizes.w1a_warmup)]
    run = run_sdk(bench, sdk, "W1a", f"sdk_{sdk}_w1a", args, tree=tree)
    latencies = run.result["latencies_ms"]
    n = sizes.w1a_runs
    _check_count(run, 3 * (n + sizes.w1a_warmup), "W1a")
    bench.add("W1a", "latency median", median(latencies), "ms", size=n, better="lower")
    bench.add("W1a", "latency p99", percentile(latencies, 99), "ms", size=n, better="lower")
    _add_cpu(bench, "W1a", run, 3 * (n + sizes.w1a_warmup), n, 1)


def sdk_w1b(bench: Bench, sdk: str, tree: Path | None = None) -> None:
    """W1b through the SDK, once per worker count: workflows/s, CPU per step, and each
    worker's share (every activity run exactly once)."""
    n = bench.sizes.w1b_workflows
    base: float | None = None
    for count in bench.workers:
        tag = f"sdk_{sdk}_w1b_{count}w"
        run = run_sdk(bench, sdk, "W1b", tag, ["--size", str(n)], workers=count, tree=tree)
        _check_count(run, 3 * n, f"W1b with {count} SDK workers")
        rate = n / float(run.result["elapsed_s"])
        topology = (
            "client and worker in one SDK process"
            if count == 1
            else f"a client process and {count} worker processes"
        )
        note = f"{topology}; the starts alone took {float(run.result['scheduling_s']):.2f} s"
        if run.per_worker:
            note += "; activities per worker " + "/".join(map(str, run.per_worker))
        if base is None:
            base = rate
        else:
            note += f"; {rate / base:.2f}x the first worker count's rate"
        bench.add(
            "W1b", "throughput", rate, "wf/s", size=n, workers=count, better="higher", note=note
        )
        _add_cpu(bench, "W1b", run, 3 * n, n, count)


def sdk_w3(bench: Bench, sdk: str, tree: Path | None = None) -> None:
    """W3 through the SDK: one chain of N steps per N; time and CPU per step. (The SDK
    replays the whole history at every step, so its own cost per step grows with N.)"""
    for steps in bench.sizes.sdk_w3_steps:
        tag = f"sdk_{sdk}_w3_{steps}"
        run = run_sdk(bench, sdk, "W3", tag, ["--size", str(steps)], tree=tree)
        _check_count(run, steps, "W3")
        elapsed = float(run.result["elapsed_s"])
        bench.add("W3", "wall time", elapsed, "s", size=steps, better="lower")
        bench.add("W3", "time per step", elapsed / steps * 1e3, "ms", size=steps, better="lower")
        _add_cpu(bench, "W3", run, steps, steps, 1)
        bench.add("W3", "server peak RSS", run.server_peak_mib, "MiB", size=steps, better="lower")


SDK_WORKLOADS = {"W1a": sdk_w1a, "W1b": sdk_w1b, "W3": sdk_w3}


def run_sdk_workloads(
    bench: Bench,
    sdk: str,
    only: set[str],
    *,
    other: Bench | None = None,
    other_tree: Path | None = None,
) -> None:
    """Run the selected SDK workloads; a failing one is reported and skipped. With ``other``,
    each workload runs again right after, with ``treadle serve`` from ``other_tree``."""
    for name, workload in SDK_WORKLOADS.items():
        if name not in only:
            continue
        runs: list[tuple[Bench, Path | None]] = [(bench, None)]
        if other is not None:
            runs.append((other, other_tree))
        for which, tree in runs:
            try:
                workload(which, sdk, tree)
            except Exception as exc:
                which.report.error(which.engine, which.target.kind, name, exc)
