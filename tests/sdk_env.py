"""A separate virtual environment with the official Dapr Python workflow SDK, for tests.

The SDK ships generated protobuf modules for the same ``.proto`` file names as
``treadle.server._proto``, so it cannot share a process with treadle's own gRPC code. Tests that
drive ``treadle serve`` through the real SDK run it as a subprocess with the interpreter that
:func:`sdk_python` returns.

The environment is created once and reused: at ``<repo>/.sdk-venv``, or at the path in
``TREADLE_SDK_VENV``. Creation is guarded by a file lock, so parallel pytest processes (or a CI
step that pre-builds it with ``python tests/sdk_env.py``) never install into the same directory at
once. If pip cannot install the SDK the calling test is skipped with pip's output in the reason;
``TREADLE_REQUIRE_SDK=1`` turns that skip into a failure (CI sets it).

Creating the environment takes about a minute, more than the per-test timeout allows on a slow
mirror: call it from a session fixture with ``@pytest.mark.timeout(...)`` raised, or pre-build it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import NoReturn

import pytest

SDK_REQUIREMENTS = ("dapr==1.18.3", "dapr-ext-workflow==1.18.3")
"""Pinned together: an unpinned ``dapr`` carries its own ``dapr/ext/workflow`` and overwrites it."""

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO_ROOT / ".sdk-venv"
_READY_MARKER = ".treadle-sdk-ready"
_PIP_TIMEOUT_S = 900


def sdk_venv_dir() -> pathlib.Path:
    """The directory of the SDK environment (``TREADLE_SDK_VENV`` or ``<repo>/.sdk-venv``)."""
    configured = os.environ.get("TREADLE_SDK_VENV")
    return pathlib.Path(configured).expanduser().resolve() if configured else DEFAULT_VENV


def _venv_python(venv: pathlib.Path) -> pathlib.Path:
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _is_ready(venv: pathlib.Path) -> bool:
    marker = venv / _READY_MARKER
    try:
        recorded = marker.read_text(encoding="utf-8")
    except OSError:
        return False
    return recorded == _marker_text() and _venv_python(venv).exists()


def _marker_text() -> str:
    return "\n".join(SDK_REQUIREMENTS) + "\n"


@contextlib.contextmanager
def _exclusive_lock(path: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) while in the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - CI and dev machines are POSIX
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _give_up(message: str) -> NoReturn:
    if os.environ.get("TREADLE_REQUIRE_SDK") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PIP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _give_up(f"cannot build the Dapr SDK test environment: {what} failed: {exc}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        _give_up(
            f"cannot build the Dapr SDK test environment: {what} exited {proc.returncode}; "
            f"check network access to the package index, or point TREADLE_SDK_VENV at an "
            f"environment that has {' '.join(SDK_REQUIREMENTS)}.\n{tail}"
        )


def _build(venv: pathlib.Path) -> None:
    # A half-built directory (an interrupted earlier run) is rebuilt from scratch.
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = str(_venv_python(venv))
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            *SDK_REQUIREMENTS,
        ],
        "pip install " + " ".join(SDK_REQUIREMENTS),
    )
    _run([python, "-c", "import dapr.ext.workflow"], "import dapr.ext.workflow")
    (venv / _READY_MARKER).write_text(_marker_text(), encoding="utf-8")


def sdk_python() -> pathlib.Path:
    """The interpreter of a virtual environment that has the pinned Dapr workflow SDK.

    Builds the environment on first use and reuses it afterwards; safe to call from several
    processes at once.

    Returns:
        The path of the environment's ``python``.

    Raises:
        pytest.skip.Exception: pip could not build the environment (the reason includes pip's
            output).
        pytest.fail.Exception: the same, when ``TREADLE_REQUIRE_SDK=1``.
    """
    venv = sdk_venv_dir()
    if not _is_ready(venv):
        with _exclusive_lock(venv.with_name(venv.name + ".lock")):
            if not _is_ready(venv):  # another process may have built it while we waited
                _build(venv)
    return _venv_python(venv)


if __name__ == "__main__":
    # Pre-build the environment, e.g. in .ci/run before pytest: python tests/sdk_env.py
    try:
        print(sdk_python())
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        sys.exit(f"error: {exc.msg}")
