"""Processes of the reliability suite: worker processes, and a throwaway PostgreSQL cluster.

:class:`PgCluster` is a server of the test's own (``initdb`` into a temporary directory, a free
port, a socket in that directory), so that the test may crash and restart it: never the
machine's own server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

WORKER = Path(__file__).with_name("worker.py")


class ProcessSlots:
    """Python processes, one per slot, each restartable; a slot's output goes to
    ``worker-<slot>.log`` in ``directory`` (appended to across restarts), shown by
    :meth:`tails` when something goes wrong. Shared by the fault suite and the chaos run.

    Args:
        commands: per slot, the script and its arguments, run with this Python.
    """

    def __init__(self, directory: Path, commands: list[list[str]]) -> None:
        self._directory = directory
        self._commands = commands
        self._outputs: list[IO[bytes]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.respawned: list[tuple[int, int]] = []  # (slot, exit code) of unplanned exits
        for slot in range(len(commands)):
            self._outputs.append((directory / f"worker-{slot}.log").open("ab"))
            self.procs.append(self._spawn(slot))

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *self._commands[slot]],
            stdin=subprocess.PIPE,
            stdout=self._outputs[slot],
            stderr=subprocess.STDOUT,
        )

    def restart(self, slot: int) -> None:
        """Start a new process in the slot (its previous one must be gone)."""
        assert self.procs[slot].poll() is not None
        self.procs[slot] = self._spawn(slot)

    def respawn_exited(self) -> None:
        """Like a supervisor: start again any process that exited on its own."""
        for slot, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None:
                self._close_stdin(proc)
                self.respawned.append((slot, code))
                self.procs[slot] = self._spawn(slot)

    def stop(self, timeout: float = 30.0) -> list[int | None]:
        """Close every process's stdin (a clean shutdown); kill those that do not exit.

        Returns:
            each slot's exit code (None if it had to be killed).
        """
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # in case the test stopped while one paused
            self._close_stdin(proc)
        codes: list[int | None] = []
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                codes.append(None)
        for output in self._outputs:
            output.close()
        return codes

    def tails(self, lines: int = 15) -> str:
        """The last lines each slot's processes wrote."""
        parts = []
        for slot in range(len(self.procs)):
            text = (self._directory / f"worker-{slot}.log").read_text(errors="replace")
            parts.append(f"--- worker {slot} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    @staticmethod
    def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()


class Workers(ProcessSlots):
    """Worker processes (``worker.py``), one per slot, each restartable.

    Args:
        args: per slot, the worker's arguments (store URL, ledger, options).
    """

    def __init__(self, directory: Path, args: list[list[str]]) -> None:
        super().__init__(directory, [[str(WORKER), *a] for a in args])

    def pids(self) -> list[int]:
        """The current process of each slot."""
        return [p.pid for p in self.procs]

    def kill(self, slot: int) -> int:
        """SIGKILL the slot's process and reap it; return its pid."""
        proc = self.procs[slot]
        proc.kill()
        proc.wait(timeout=10)
        self._close_stdin(proc)
        return proc.pid


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, if PostgreSQL's server is installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


class PgCluster:
    """A PostgreSQL server of the test's own, in ``directory``; started at once.

    As root it runs as the ``postgres`` user (the server refuses to run as root).

    It runs with ``fsync=off``: the suite crashes the server's processes, never the machine,
    and a commit's WAL is written to the kernel before the server acknowledges it
    (``synchronous_commit`` stays on), so a crash of the server loses nothing the kernel
    holds; only a power loss would, which no test here makes.

    Raises:
        RuntimeError: the server binaries are missing, or the server did not start.
    """

    def __init__(self, directory: Path) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server (initdb, pg_ctl) is not installed")
        self._bin = bindir
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.log = directory / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam("postgres")
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [str(self._bin / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}\n{log}")

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB -c fsync=off"
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            self._options(),
            "-l",
            str(self.log),
            "-w",
            "start",
        )

    def restart_immediate(self) -> float:
        """``pg_ctl restart -m immediate`` (a crash of the server, then recovery); return
        how long it took."""
        began = time.monotonic()
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            self._options(),
            "-l",
            str(self.log),
            "-m",
            "immediate",
            "-w",
            "restart",
        )
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop the server (fast); ignore a server already gone."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
