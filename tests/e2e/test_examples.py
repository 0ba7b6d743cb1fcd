"""Every script under ``examples/`` runs to the end and prints the results it promises."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = {
    "dashboard.py": [
        "quote COMPLETED: 390",
        's0n0["price \u00d720<br/>20 ✓',
        "Graph written to ",
        "answers 200",
        "The order's page shows it waiting on event 'approve'.",
        'order COMPLETED: "A-1 reserved, approved by alice"',
    ],
    "rerun.py": [
        "First run FAILED: ValueError: not a database URL: 'warehouse'",
        "Rerunning from event 3 (load) with a corrected target.",
        'Rerun COMPLETED: {"rows":[1,2,3],"load":"loaded into db://warehouse"}',
    ],
    "postgres_workers.py": [
        "10 workflows COMPLETED, each sum = 2470.",
        "Worker processes that ran activities: 2 of 2.",
    ],
    "async_http_api.py": [
        "POST start -> 202",
        "runtimeStatus=COMPLETED",
        'Output: {"order":{"item":"lamp","quantity":2},"reservation":"reserved 2 x lamp"}',
        'Custom status: "done"',
        "OpenAPI 3.0.3: ",
        "start: Start a workflow instance",
    ],
    "task_chaining.py": [
        "Workflow COMPLETED, result: [11,22,20]",
        "Executing error handler: TypeError: can only concatenate str",
        "Workflow FAILED: TypeError: can only concatenate str",
    ],
    "fan_out_fan_in.py": ["Final result: 110.", "Workflow COMPLETED in "],
    "monitor.py": [
        "Check 2: payments is unhealthy.",
        'Workflow COMPLETED: {"service":"payments","checks":3,"status":"healthy"}',
    ],
    "external_events.py": [
        'Approved: "order A-1 placed, approved by alice"',
        'Timed out: "order B-2 cancelled: no approval in time"',
    ],
    "compensation.py": [
        "Booked a flight to Lisbon for trip ",
        "Cancelled hotel-456.\nCancelled flight-123.",
        '"compensated":["hotel-456","flight-123"]',
        "no cars left in Lisbon",
    ],
    "child_workflows.py": [
        'Workflow COMPLETED: ["book: shipped","lamp: shipped","unicorn: out of stock"]',
        "-lamp: COMPLETED",
    ],
    "retry_policy.py": [
        "Charging 42: attempt 3.",
        '{"charge":"charged 42 after 3 attempts","gave_up":"ValueError: this never works"}',
    ],
    "typed_payloads_async_client.py": ['Workflow COMPLETED: "3 x lamp: 37.50 EUR"'],
    "history_propagation.py": [
        'm-42: COMPLETED: {"payment":"paid m-42","audit":"audited [\'checkout\'] (LINEAGE): '
        'pay completed=True"}',
        'x-13: COMPLETED: {"payment":"refused: invalid merchant"',
    ],
    "versioning.py": [
        'lamp: started on v1 before the upgrade, COMPLETED: "lamp shipped by v1"',
        'book: on v2, past the gift-wrap point before the patch, COMPLETED: "book shipped by v2"',
        'vase: started after the patch, COMPLETED: "vase shipped by v2, gift-wrapped"',
        "chair: on v1, which this release removed: STALLED (Version not available: v1)",
        'chair: once v1 is back, COMPLETED: "chair shipped by v1"',
    ],
    "multi_app.py": [
        "app billing ready\napp shipping ready",
        '"receipt":"charged 37.50 EUR in app \'billing\'"',
        '"parcels":["lamp packed in app \'shipping\'","desk packed in app \'shipping\'"]',
        'COMPLETED: {"id":"A-2","status":"not shipped","why":"card expired for order A-2"}',
        "A call to app 'audit', which has no worker: \"TimeoutError\"",
    ],
    "queues.py": [
        'Workflow COMPLETED: {"sent":12,"squares":2470}',
        "within the limit of 2: True.",
        "12 mails at 5 a second took 2 s or more.",
        "within max_concurrent=3: True.",
        "The store keeps queue 'mail' at concurrency 2, registered by this worker: True.",
        "Pinned for every worker: concurrency 1 (True).",
    ],
    "retention.py": [
        "Finished: 3 COMPLETED, 1 FAILED.",
        "After the retention period: 0 COMPLETED, 1 FAILED (kept 30 days).",
        "A dry run would purge 1 FAILED instance(s).",
        "Purged 1 FAILED instance(s).",
    ],
    "schedules.py": [
        "Daily report: next at 09:00 in Paris.",
        "Heartbeat instances: 3 or more, such as heartbeat@",
        'Its output: "heartbeat report sent"',
        "The schedule records its slots: True.",
        "Triggered by hand: daily@<now>",
        "Schedules left: 0.",
    ],
    "testing_workflows.py": [
        "event 5: history recorded TaskScheduled (call_activity('charge')) at step 2, but the "
        "workflow called call_activity('notify') now",
        "4 passed",
    ],
    "heartbeats.py": [
        "Stuck after batch 3 (no more heartbeats).",
        "Attempt starts after batch 3.",
        'Import COMPLETED: "imported batches 4 to 10 in this attempt"',
        "Taken over long before the lease: True.",
        "The stuck attempt was taken over; it gives up.",
    ],
    "timeouts.py": [
        "Attempt 1 for lamp was told to stop.",
        'Quote COMPLETED: "lamp: 12.50 EUR (attempt 2)"',
        'Labels COMPLETED: ["label for lamp","label for desk","label for chair"]',
        "Report FAILED: TimeoutError",
        "crunch was told to stop.",
    ],
    "observability.py": [
        "Order of lamp: COMPLETED",
        "Order of unicorn: FAILED",
        "Logged at INFO by treadle.runtime.observe: "
        "{'workflow_name': 'order', 'error_type': 'TaskFailedError'}",
        'dapr_runtime_workflow_execution_count{app_id="",status="failed",workflow_name="order"} '
        "1.0",
        'dapr_runtime_workflow_activity_execution_count{activity_name="reserve",app_id="",'
        'status="success"} 1.0',
        "threads, the runtime's among them: ",
        "treadle-dispatcher",
    ],
    "turn_timeout.py": [
        'healthy: COMPLETED: {"value":0,"share":"refused: InvalidInputError"}',
        'healthy: COMPLETED: {"value":40,"share":0.25}',
        "stuck: FAILED: TurnTimeout",
    ],
    "poison_activity.py": [
        "The worker died 3 times.",
        "healthy: COMPLETED: 2",
        "healthy: COMPLETED: 4",
        'import_file: COMPLETED: "parked: ActivityPoisoned"',
    ],
    "tracing.py": [
        'Order COMPLETED: ["charged 40","lamp packed"]',
        "One trace: True (9 spans)",
        "POST /checkout\n  create_orchestration||order\n    orchestration||order\n"
        "      activity||charge  ERROR ConnectionError: payment service unavailable\n"
        "      timer\n      activity||charge\n      timer\n      orchestration||ship\n"
        "        activity||pack",
    ],
    "suspend_resume.py": [
        "After suspend: SUSPENDED",
        "After raising the event while suspended: SUSPENDED",
        'After resume: COMPLETED: "report prepared, continued by alice"',
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.glob("*.py"))


NEEDS_POSTGRES = {"postgres_workers.py"}
NEEDS_OTEL_SDK = {"tracing.py"}


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - NEEDS_POSTGRES))
def test_example_runs(name: str, tmp_path: Path) -> None:
    if name in NEEDS_OTEL_SDK and importlib.util.find_spec("opentelemetry.sdk") is None:
        pytest.skip(f"{name} needs opentelemetry-sdk (in the dev extras): pip install -e '.[dev]'")
    _run_example(name, tmp_path, {})


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(NEEDS_POSTGRES))
def test_postgres_example_runs(name: str, tmp_path: Path, postgres_url: str) -> None:
    _run_example(name, tmp_path, {"TREADLE_EXAMPLE_POSTGRES": postgres_url})


def _run_example(name: str, tmp_path: Path, extra_env: dict[str, str]) -> None:
    env = {**os.environ, "TREADLE_STORE": f"sqlite:///{tmp_path / 'example.db'}", **extra_env}
    env["EXAMPLE_FAST"] = "1"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"{line!r} not in output:\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
