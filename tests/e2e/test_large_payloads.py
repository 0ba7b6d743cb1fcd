"""Payloads of many megabytes go through every step of a workflow intact, on both stores."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.core.history import TaskCompleted


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'treadle.db'}"


def _grow(ctx: wf.WorkflowActivityContext, text: str) -> str:
    return text + "é" * 3_000_000


def _big_chain(ctx: wf.WorkflowContext, text: str) -> Generator[wf.Task[Any], Any, int]:
    grown = yield ctx.call_activity(_grow, input=text)
    again = yield ctx.call_activity(_grow, input=grown)
    ctx.set_custom_status(again[:10])
    return len(again)


def test_a_workflow_of_large_inputs_and_results_completes(
    make_runtime: Any, client: wf.WorkflowClient
) -> None:
    runtime = make_runtime(start=False)
    runtime.register_workflow(_big_chain, name="big_chain")
    runtime.register_activity(_grow, name="_grow")
    runtime.start()
    text = "x" * 4_000_000
    iid = client.schedule_new_workflow("big_chain", input=text)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output or "null") == 4_000_000 + 6_000_000
    assert json.loads(state.serialized_input or "null") == text
    history = client.get_workflow_history(iid)
    results = [e for e in history if isinstance(e, TaskCompleted)]
    assert [len(json.loads(e.result or "null")) for e in results] == [7_000_000, 10_000_000]
