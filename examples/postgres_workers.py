"""Scale out on PostgreSQL: several worker processes share the work of one store.

The same code as on SQLite, pointed at PostgreSQL: this script starts two worker processes
(``treadle worker postgres_workers:runtime``), schedules a batch of fan-out workflows, and
shows that both workers ran activities. Workers on other hosts join the same way.

Run: ``python examples/postgres_workers.py`` (PostgreSQL at $TREADLE_EXAMPLE_POSTGRES, default
``postgresql://postgres@127.0.0.1:5432/test``; the example uses a schema of its own and drops
it at the end).
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import treadle as wf

SERVER = os.environ.get("TREADLE_EXAMPLE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = os.environ.get("EXAMPLE_SCHEMA") or f"treadle_example_{uuid.uuid4().hex[:8]}"
STORE = f"{SERVER}?schema={SCHEMA}"

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def square(ctx: wf.WorkflowActivityContext, x: int) -> dict:
    time.sleep(0.02)  # some work, so that both workers get a share
    return {"value": x * x, "worker": os.getpid()}


@runtime.workflow
def sum_of_squares(ctx: wf.DaprWorkflowContext, n: int):
    parts = yield wf.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    return {"sum": sum(p["value"] for p in parts), "workers": sorted({p["worker"] for p in parts})}


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "EXAMPLE_SCHEMA": SCHEMA, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "treadle.cli", "--db", STORE, "worker"]
    workers = [
        subprocess.Popen([*command, "postgres_workers:runtime"], cwd=here, env=env,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    try:
        for worker in workers:  # each says "treadle worker ..." once it is running
            assert worker.stdout is not None and worker.stdout.readline().startswith("treadle")
        with wf.WorkflowClient(STORE) as client:
            ids = [client.schedule_new_workflow(sum_of_squares, input=20) for _ in range(10)]
            used: Counter[int] = Counter()
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
                assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
                used.update(json.loads(state.serialized_output)["workers"])
        print(f"10 workflows COMPLETED, each sum = {sum(i * i for i in range(20))}.")
        print(f"Worker processes that ran activities: {len(used)} of {len(workers)}.")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        _drop_schema()


def _drop_schema() -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


if __name__ == "__main__":
    main()
