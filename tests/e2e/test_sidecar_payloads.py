"""Dataclasses cross between an official SDK worker and in-process functions through
``treadle serve``, each side reading them as the SDK decodes them (attribute access; an
annotated input rebuilt as its type), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sdk_env import sdk_python

from .sidecar import HERE, describe, last_line, run_sdk, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_dataclasses_between_sdk_and_in_process_functions(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None
    python = sdk_python()
    with serve(tmp_path, "--app", "sidecar_app:runtime", cwd=HERE, db=db) as served:
        result = run_sdk(python, "payloads.py", "--address", served.address)
        assert result.returncode == 0, describe(result, served)
        out = json.loads(last_line(result.stdout))
    # the SDK workflow read the in-process activity's dataclass as the SDK decodes one
    assert out["sdk"] == {
        "status": "COMPLETED",
        "output": {"item": "tea", "total": 15, "kind": "SimpleNamespace"},
    }, describe(result, served)
    # the in-process workflow read the SDK activity's dataclass the same way
    assert out["app"] == {
        "status": "COMPLETED",
        "output": {"item": "tea", "total": 10, "kind": "SimpleNamespace"},
    }, describe(result, served)
