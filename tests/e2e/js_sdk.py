"""The JavaScript durabletask SDK (``@dapr/durabletask-js``) for the ``treadle serve`` tests: it is
installed once with npm into ``<repo>/.js-sdk`` (ignored by git), or ``$TREADLE_JS_SDK_DIR``,
and its scripts (``sdk_scripts/js_*.js``) run with Node.js."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .sidecar import REPO_ROOT, SDK_SCRIPTS, Served

JS_SDK = "@dapr/durabletask-js"
JS_SDK_VERSION = "1.0.0"


def _give_up(message: str) -> NoReturn:
    if os.environ.get("TREADLE_REQUIRE_SDK") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def js_sdk_modules() -> Path:
    """The ``node_modules`` directory holding the JS SDK; installs it on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JavaScript SDK test")
    root = Path(os.environ.get("TREADLE_JS_SDK_DIR") or REPO_ROOT / ".js-sdk")
    modules = root / "node_modules"
    installed = modules / JS_SDK / "package.json"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root.with_name(root.name + ".lock")):
        if installed.is_file() and json.loads(installed.read_text())["version"] == JS_SDK_VERSION:
            return modules
        manifest = {
            "name": "treadle-js-sdk-tests",
            "private": True,
            "dependencies": {JS_SDK: JS_SDK_VERSION},
        }
        (root / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            proc = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            _give_up(f"npm install {JS_SDK}@{JS_SDK_VERSION} timed out")
        if proc.returncode != 0 or not installed.is_file():
            _give_up(
                f"npm install {JS_SDK}@{JS_SDK_VERSION} failed ({proc.returncode}); check access "
                f"to the npm registry:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
    return modules


def run_node(modules: Path, script: str, *args: str, timeout: float = 120) -> Any:
    """Run ``sdk_scripts/<script> args`` with Node.js to completion and return what it printed
    on its ``RESULT <json>`` line (fails the test, with the output, if it failed)."""
    result = subprocess.run(
        ["node", str(SDK_SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "NODE_PATH": str(modules)},
        stdin=subprocess.DEVNULL,
    )
    lines = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, (
        f"{script} {args} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return json.loads(lines[0].removeprefix("RESULT "))


def node_result(modules: Path, served: Served, script: str, *args: str) -> Any:
    """:func:`run_node` against ``served``, with its log in the failure message."""
    try:
        return run_node(modules, script, served.address, *args)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver log:\n{served.logs()}") from None
