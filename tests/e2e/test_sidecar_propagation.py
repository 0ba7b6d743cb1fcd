"""History propagation through ``treadle serve`` with the official Python SDK: the history
reaches SDK workflows and activities as daprd sends it (``propagatedHistory`` with one chunk
of serialized events per workflow), and an SDK workflow's history reaches in-process
activities too; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sdk_env import sdk_python

from .sidecar import HERE, describe, last_line, run_sdk, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


def _run(tmp_path: Path, middle_scope: str, db: str | None = None) -> dict[str, Any]:
    python = sdk_python()
    env = {"TREADLE_APP_ID": "shop"}
    with serve(tmp_path, "--app", "sidecar_app:runtime", cwd=HERE, env=env, db=db) as served:
        result = run_sdk(
            python,
            "propagation.py",
            "--address",
            served.address,
            "--middle-scope",
            middle_scope,
        )
        assert result.returncode == 0, describe(result, served)
        out: dict[str, Any] = json.loads(last_line(result.stdout))
        assert out["status"] == "COMPLETED", describe(result, served)
        assert out["app_status"] == "COMPLETED", describe(result, served)
        return out


ROOT = ["shop", "sdk-root", "sdk_root"]
MIDDLE = ["shop", "sdk-middle", "sdk_middle"]
LINEAGE = {
    "scope": "LINEAGE",
    "chain": [ROOT, MIDDLE],
    "validated": [[True, {"who": "root"}], [True, {"who": "middle"}]],
}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sdk_workflows_and_activities_receive_the_history(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None
    run = _run(tmp_path, "LINEAGE", db)
    out = run["output"]
    assert out["middle"] == {
        "scope": "OWN_HISTORY",
        "chain": [ROOT],
        "validated": [[True, {"who": "root"}]],
    }
    assert out["leaf"] == LINEAGE
    assert out["audit"] == LINEAGE
    # an in-process activity reads what an SDK workflow propagated
    assert out["app"] == LINEAGE
    # an SDK activity reads what an in-process workflow propagated
    assert run["app_output"] == {
        "scope": "OWN_HISTORY",
        "chain": [["shop", "app-propagates", "app_propagates"]],
        "validated": [[True, {"who": "app"}]],
    }


def test_own_history_drops_what_the_caller_received(tmp_path: Path) -> None:
    out = _run(tmp_path, "OWN_HISTORY")["output"]
    assert out["leaf"]["chain"] == [MIDDLE]
