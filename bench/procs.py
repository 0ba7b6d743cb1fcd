"""Child processes of the driver: start, wait until ready, stop or kill, and peak memory.

Peak memory is the child's ``VmHWM`` (``/proc/<pid>/status``), read just before it is
stopped or killed. ``getrusage``'s ``ru_maxrss`` of a child (``os.wait4``) is only the
fallback where there is no ``/proc``: Linux carries the pre-``exec`` high-water mark over
``execve``, and a freshly forked child's is the driver's, so ``ru_maxrss`` can never be
lower than this process's RSS at the time of the spawn.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a child ended.

    Attributes:
        returncode: its exit code (negative: killed by that signal).
        peak_mib: its peak resident set size, in MiB.
    """

    returncode: int
    peak_mib: float


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """The peak RSS (``VmHWM``) of a live process in MiB, or None without ``/proc``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int | str = "self") -> float:
    """The CPU time (user and system) a live process has used, from ``/proc/<pid>/stat``;
    0.0 where there is no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ChildError(RuntimeError):
    """A child process failed to start or ended badly."""


def child_env() -> dict[str, str]:
    """The environment for children: ``bench`` importable whatever the working directory."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{BENCH_ROOT}{os.pathsep}{path}" if path else str(BENCH_ROOT)
    return env


class Child:
    """A Python child process (``python -m module args``) with its stderr in a file.

    Args:
        module: the module to run.
        args: its arguments.
        log_path: where its stderr goes (shown when it fails).
        stdout_to_log: send stdout to the log too (a child that prints no ``READY``).
    """

    def __init__(
        self, module: str, args: Sequence[str], log_path: Path, *, stdout_to_log: bool = False
    ) -> None:
        self.module = module
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=self._log if stdout_to_log else subprocess.PIPE,
            stderr=self._log,
            env=child_env(),
            cwd=BENCH_ROOT,
        )
        self.exit: ExitInfo | None = None
        self._peak_mib: float | None = None
        self._profiler: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait for the child's ``READY`` line.

        Raises:
            ChildError: it exited, or did not get ready in time.
        """
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], 0.1)
            if ready:
                line = stdout.readline()
                if line.strip() == b"READY":
                    return
                if not line:
                    break
        self.kill()
        raise ChildError(f"{self.describe()} did not get ready: {self.log_tail()}")

    def profile(self, out_path: Path, rate_hz: int = 200) -> None:
        """Attach py-spy to the child; it writes collapsed stacks when the child exits."""
        self._profiler = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "raw",
                "--rate",
                str(rate_hz),
                "--nonblocking",
                "-o",
                str(out_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, timeout_s: float = 30.0) -> ExitInfo:
        """SIGTERM, wait up to ``timeout_s`` (then SIGKILL), and reap."""
        if self.exit is None:
            self._peak_mib = peak_rss_mib(self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            self._reap(timeout_s)
        assert self.exit is not None
        return self.exit

    def has_exited(self) -> bool:
        """Whether the child has ended (without reaping it: :meth:`wait` still can)."""
        if self.exit is not None:
            return True
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def wait(self, timeout_s: float) -> ExitInfo:
        """Wait for the child to exit by itself (SIGKILL after ``timeout_s``), and reap.

        Its peak RSS is then ``ru_maxrss``: a child that ends by itself should report its
        own :func:`peak_rss_mib` before it exits.
        """
        if self.exit is None:
            self._reap(timeout_s)
        assert self.exit is not None
        return self.exit

    def kill(self) -> ExitInfo:
        """SIGKILL and reap."""
        if self.exit is None:
            self._peak_mib = peak_rss_mib(self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self._reap(30.0)
        assert self.exit is not None
        return self.exit

    def _reap(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                break
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                deadline = time.monotonic() + 30.0
            time.sleep(0.005)
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # reaped here: Popen must not wait for it again
        peak = self._peak_mib if self._peak_mib is not None else usage.ru_maxrss / 1024
        self.exit = ExitInfo(code, peak)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
        if self._profiler is not None:
            try:
                self._profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._profiler.kill()
                self._profiler.wait()

    def describe(self) -> str:
        """``module (pid N)``."""
        return f"{self.module} (pid {self.pid})"

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def has_py_spy() -> bool:
    """Whether py-spy is on the PATH."""
    return shutil.which("py-spy") is not None


@contextlib.contextmanager
def workers(
    count: int,
    store_url: str,
    log_dir: Path,
    tag: str,
    *,
    profile_dir: Path | None = None,
) -> Iterator[list[Child]]:
    """Start ``count`` worker processes on ``store_url``, ready; stop them on exit.

    The caller reads each worker's ``exit`` (peak RSS) after the block.
    """
    started: list[Child] = []
    try:
        for i in range(count):
            started.append(
                Child("bench.worker", ["--store", store_url], log_dir / f"{tag}-w{i}.log")
            )
        for i, child in enumerate(started):
            child.wait_ready()
            if profile_dir is not None:
                child.profile(profile_dir / f"{tag}-w{i}.txt")
        yield started
    finally:
        for child in started:
            child.stop()
