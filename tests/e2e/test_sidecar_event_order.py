"""Events raised at an SDK workflow that continues as new with ``save_events=True`` reach its
next runs in the order they were raised, through ``treadle serve``, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sdk_env import sdk_python

from .sidecar import describe, run_sdk, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv

N_EVENTS = 20
RUNS = 3


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_burst_of_events_reaches_the_next_runs_in_order(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None
    python = sdk_python()
    with serve(tmp_path, db=db) as served:
        result = run_sdk(
            python,
            "event_order.py",
            "--address",
            served.address,
            "--events",
            str(N_EVENTS),
            "--runs",
            str(RUNS),
        )
        assert result.returncode == 0, describe(result, served)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert len(lines) == RUNS, describe(result, served)
        for line in lines:
            assert line == {"status": "COMPLETED", "output": list(range(1, N_EVENTS + 1))}, (
                describe(result, served)
            )
