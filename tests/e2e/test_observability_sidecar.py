"""Metrics of ``treadle serve`` with the official Python SDK, on SQLite and PostgreSQL: the
SDK client's workflow operations over gRPC are counted under Dapr's
``dapr_runtime_workflow_operation_*``, and the runs and activities the SDK worker runs under
``..._execution_*`` and ``..._activity_execution_*``; ``--metrics-port`` serves them (on
``--host`` unless ``--metrics-host`` says otherwise) as the HTTP API's ``/metrics`` does."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sdk_env import sdk_python

from .conftest import EVERY_BACKEND
from .helpers import wait_until
from .sidecar import Served, describe, last_line, run_sdk, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics_line(served: Served) -> str:
    """The ``metrics: URL`` line serve prints after its ports."""
    found: str = wait_until(
        lambda: next((line for line in served.output if line.startswith("metrics: ")), ""),
        timeout=30,
        what="the metrics line",
        state=lambda: served.output,
    )
    return found


def _samples(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The value of the sample of ``metric`` with ``labels`` (and the Dapr labels)."""
    found = [
        value
        for (name, sample_labels), value in samples.items()
        if name == metric and all((k, v) in sample_labels for k, v in labels.items())
    ]
    assert len(found) <= 1, (metric, labels, found)
    return found[0] if found else None


@pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)
def test_sdk_operations_runs_and_activities_are_counted(tmp_path: Path, store_url: str) -> None:
    db = store_url
    python = sdk_python()
    with serve(tmp_path, "--metrics-port", "0", db=db) as served:
        line = _metrics_line(served)
        found = re.fullmatch(r"metrics: (http://127\.0\.0\.1:\d+/metrics)", line)
        assert found, line  # on --host (127.0.0.1 here)
        url = found.group(1)
        result = run_sdk(python, "operations.py", "--address", served.address)
        assert result.returncode == 0, describe(result, served)
        out = json.loads(last_line(result.stdout))
        assert out == {
            "ops-ok": "COMPLETED",
            "ops-bad": "FAILED",
            "ops-end": "TERMINATED",
            "read": "COMPLETED",
            "nobody_failed": True,
        }, describe(result, served)
        execution = "dapr_runtime_workflow_execution_count"

        def terminated_counted() -> Samples | None:
            got = _samples(url)
            return got if _value(got, execution, status="terminated") == 1.0 else None

        # (a run is counted once its last turn commits: that may come after the answer)
        samples = wait_until(terminated_counted, timeout=30, what="the terminated run counted")
        assert samples is not None
        op = "dapr_runtime_workflow_operation_count"
        for operation, status, count in (
            ("create_workflow", "success", 3),
            ("suspend_workflow", "success", 1),
            ("resume_workflow", "success", 1),
            ("add_event", "success", 2),
            ("add_event", "failed", 1),
            ("terminate_workflow", "success", 1),
            ("purge_workflow", "success", 1),
        ):
            assert _value(samples, op, operation=operation, status=status) == count, (
                operation,
                status,
            )
            latency = "dapr_runtime_workflow_operation_latency_count"
            assert _value(samples, latency, operation=operation, status=status) == count
        got = _value(samples, op, operation="get_workflow", status="success")
        assert got is not None and got >= 1
        flow = {"workflow_name": "sdk_ops_flow"}
        assert _value(samples, execution, **flow, status="success") == 1.0
        assert _value(samples, execution, **flow, status="failed") == 1.0
        assert _value(samples, execution, **flow, status="terminated") == 1.0
        latency = "dapr_runtime_workflow_execution_latency_count"
        assert _value(samples, latency, **flow, status="success") == 1.0
        activity = "dapr_runtime_workflow_activity_execution_count"
        step = {"activity_name": "sdk_ops_step"}
        assert _value(samples, activity, **step, status="success") == 1.0
        assert _value(samples, activity, **step, status="failed") == 1.0
        latency = "dapr_runtime_workflow_activity_execution_latency_count"
        assert _value(samples, latency, **step, status="success") == 1.0
        # the HTTP API's /metrics serves the same, with the server's own
        http = _samples(f"http://127.0.0.1:{served.http_port}/metrics")
        assert _value(http, activity, **step, status="failed") == 1.0
        assert _value(http, "treadle_store_up") == 1.0


def test_serve_metrics_port_without_http(tmp_path: Path) -> None:
    with serve(tmp_path, "--no-http", "--metrics-port", "0", "--metrics-host", "::1") as served:
        line = _metrics_line(served)
        found = re.fullmatch(r"metrics: http://\[::1\]:(\d+)/metrics", line)
        assert found, line
        samples = _samples(f"http://[::1]:{found.group(1)}/metrics")
        assert _value(samples, "treadle_store_up") == 1.0
