"""What a process imports: `import treadle` loads no more than the errors, and a worker
(a runtime started on SQLite, as `python -m bench.worker` does) loads neither the client,
the server, the optional integrations (gRPC, PostgreSQL, OpenTelemetry, Prometheus,
pydantic), the executor of remote (SDK) workers, nor what only some workers need (asyncio,
zoneinfo, ctypes).

Each check runs in a fresh interpreter (a subprocess), since this one has imported it all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# third-party packages no plain user or SQLite worker needs
OPTIONAL = ("grpc", "psycopg", "psycopg_pool", "opentelemetry", "prometheus_client", "pydantic")
# treadle's own packages and modules off a worker's path
OFF_THE_WORKER_PATH = (
    "treadle.client",
    "treadle.server",
    "treadle.runtime.metrics",
    "treadle.runtime.remote",
    "treadle.runtime.tracing",
    "treadle.runtime.tracing_spans",
    "treadle.store.postgres",
)
# stdlib modules only some workers need: async activities, schedules, an overrunning turn
RARE_STDLIB = ("asyncio", "zoneinfo", "ctypes")

_LOADED = (
    "print(json.dumps(sorted(m for m in sys.modules "
    f"if m.split('.')[0] in {OPTIONAL + RARE_STDLIB!r} "
    f"or m.startswith({OFF_THE_WORKER_PATH!r}))))"
)


def _loaded_after(code: str) -> list[str]:
    """The watched modules a fresh interpreter has loaded after running ``code``."""
    loaded: list[str] = json.loads(_python(f"{code}\n{_LOADED}").splitlines()[-1])
    return loaded


def _python(code: str) -> str:
    """What a fresh interpreter prints running ``code`` (after ``import json, sys``)."""
    return subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{code}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    ).stdout


def test_import_treadle_loads_only_the_errors() -> None:
    code = (
        "import treadle\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('treadle'))))"
    )
    assert json.loads(_python(code)) == ["treadle", "treadle.errors"]


def test_import_treadle_loads_nothing_heavy() -> None:
    assert _loaded_after("import treadle") == []


def test_public_names_still_import_on_use() -> None:
    code = (
        "import treadle as wf\n"
        "from treadle import WorkflowRuntime, DaprWorkflowClient\n"
        "assert wf.DaprWorkflowClient is DaprWorkflowClient is wf.WorkflowClient\n"
        "assert wf.WorkflowRuntime is WorkflowRuntime\n"
        "assert set(wf.__all__) <= set(dir(wf))\n"
        "assert wf.store.open_store is not None  # subpackages: attributes, as before\n"
    )
    loaded = _loaded_after(code)
    assert "treadle.client" in loaded
    assert [m for m in loaded if m.split(".")[0] in OPTIONAL] == []


def test_a_sqlite_worker_loads_nothing_off_its_path(tmp_path: Path) -> None:
    code = (
        "import bench.worker, bench.app\n"
        f"runtime = bench.app.build_runtime('sqlite:///{tmp_path}/w.db')\n"
        "runtime.start()\n"
        "runtime.shutdown(timeout=10)\n"
        "runtime.store.close()\n"
    )
    assert _loaded_after(code) == []


def test_a_client_does_not_load_the_runtime() -> None:
    code = (
        "import treadle\ntreadle.WorkflowClient\n"
        "assert not [m for m in sys.modules if m.startswith('treadle.runtime')]"
    )
    _loaded_after(code)
