"""The official SDK's asyncio client (``dapr.ext.workflow.aio``) drives instances through
``treadle serve`` as it does through daprd, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sdk_env import sdk_python

from .sidecar import describe, last_line, run_sdk, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_sdk_async_client_through_the_sidecar(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None
    python = sdk_python()
    with serve(tmp_path, db=db) as served:
        result = run_sdk(python, "aio_client.py", "--address", served.address)
        assert result.returncode == 0, describe(result, served)
        seen = json.loads(last_line(result.stdout))
    assert seen == {
        "started": "RUNNING",
        "paused": "SUSPENDED",
        "resumed": "RUNNING",
        "done": ["COMPLETED", {"approved_by": "alice"}],
        "terminated": ["TERMINATED", "stopped"],
        "purged": [True, True],
    }, describe(result, served)
