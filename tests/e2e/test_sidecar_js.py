"""``treadle serve`` with the JavaScript durabletask SDK (``@dapr/durabletask-js``) on Node.js.

The JS SDK sends no completion tokens (its generated messages have no such field), so this
checks that completions are matched by instance and task id. The SDK is installed once with npm
(see :mod:`tests.e2e.js_sdk`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .js_sdk import js_sdk_modules
from .sidecar import SDK_SCRIPTS, serve


@pytest.mark.timeout(300)
def test_js_sdk_runs_a_task_chain_and_a_fan_out(tmp_path: Path) -> None:
    modules = js_sdk_modules()
    with serve(tmp_path, "--no-http") as served:
        result = subprocess.run(
            ["node", str(SDK_SCRIPTS / "js_workflows.js"), served.address],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NODE_PATH": str(modules)},
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\nserver log:\n{served.logs()}"
        )
    squares = [i * i for i in range(1, 11)]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    assert json.loads(line.removeprefix("RESULT ")) == {
        "sequence": {
            "status": "COMPLETED",
            "output": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
        },
        "fan_out": {"status": "COMPLETED", "output": {"results": squares, "sum": sum(squares)}},
    }
