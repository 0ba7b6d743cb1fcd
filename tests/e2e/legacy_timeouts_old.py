"""Run the workflows of ``legacy_timeouts_app`` on treadle as of schema 8 (before activity
timeouts moved into the store) and stop mid-way, as a user upgrading would.

Run with the old treadle first on the path (``git archive debadc3``)::

    PYTHONPATH=OLD python tests/e2e/legacy_timeouts_old.py midway STORE_URL DIR
    PYTHONPATH=OLD python tests/e2e/legacy_timeouts_old.py export STORE_URL DIR OUT

``midway``: start one instance of each workflow (ids are the workflow names), wait until each
is where the test expects it (its timeout timers recorded; ``retried`` on its second attempt,
``fired`` past its timeout), then kill the process (``os._exit``: no clean stop). ``export``:
open the gate, run each to completion and write its history to ``OUT/NAME.json`` (as saved in
``tests/histories/legacy_timeouts``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import treadle as wf

# (the script's directory is first on sys.path)
app: Any = importlib.import_module("legacy_timeouts_app")


def _kinds(client: wf.WorkflowClient, instance_id: str) -> list[str]:
    return [e.KIND for e in client.get_workflow_history(instance_id)]


def _midway(kinds: dict[str, list[str]]) -> bool:
    def count(name: str, kind: str) -> int:
        return kinds[name].count(kind)

    return (
        count("single", "TimerCreated") == 1
        and count("fanout", "TimerCreated") == 3
        and count("retried", "TaskScheduled") == 2
        and count("retried", "TimerCreated") == 4  # timeout, retry, timeout
        and count("fired", "TaskScheduled") == 2
        and count("fired", "TimerCreated") == 2
        and count("waiting", "TimerCreated") == 1
        and (Path(os.environ["TREADLE_LEGACY_DIR"]) / "retried.attempts").read_text() == "2"
    )


def main(argv: list[str]) -> None:
    mode, url, directory = argv[:3]
    os.environ["TREADLE_LEGACY_DIR"] = directory
    if mode == "export":
        (Path(directory) / "open").touch()
    runtime = wf.WorkflowRuntime(url)
    app.register(runtime)
    runtime.start()
    client = wf.WorkflowClient(url)
    for workflow in app.WORKFLOWS:
        client.schedule_new_workflow(workflow, instance_id=workflow.__name__)
    deadline = time.monotonic() + 60
    if mode == "midway":
        while True:
            kinds = {w.__name__: _kinds(client, w.__name__) for w in app.WORKFLOWS}
            attempts = Path(directory) / "retried.attempts"
            if attempts.exists() and _midway(kinds):
                break
            if time.monotonic() > deadline:
                sys.exit(f"not mid-way after 60 s: {kinds}")
            time.sleep(0.05)
        print("midway", flush=True)
        os._exit(0)
    out = Path(argv[3])
    for workflow in app.WORKFLOWS:
        name = workflow.__name__
        state: Any = client.wait_for_workflow_completion(name, timeout_in_seconds=60)
        assert state.runtime_status.name == "COMPLETED", (name, state)
        (out / f"{name}.json").write_text(client.export_workflow_history(name))
    print("exported", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
