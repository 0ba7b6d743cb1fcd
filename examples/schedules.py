"""Schedules: start a workflow on a cron or an interval, durably.

A schedule lives in the store: every runtime of the store fires its slots, each exactly once
however many run, and slots missed while none ran fire on restart if they are inside the
catch-up window. Each instance is named after its schedule and slot
(``heartbeat@2026-12-07T03:00:00Z``).

Run: ``python examples/schedules.py``.
"""

import os
import tempfile
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'schedules.db')}"
)

PARIS = ZoneInfo("Europe/Paris")

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def send_report(ctx: wf.WorkflowActivityContext, job: dict) -> str:
    return f"{job['kind']} report sent"


@runtime.workflow
def report(ctx: wf.DaprWorkflowContext, job: dict):
    return (yield ctx.call_activity(send_report, input=job))


def main() -> None:
    with wf.DaprWorkflowClient(STORE) as client:
        for old in client.list_schedules():  # (a fresh start when the example runs again)
            client.delete_schedule(old.schedule_id)
        client.purge_workflows()
        # every morning at 09:00 in Paris, summer time or winter time
        client.create_schedule(
            "daily", report, cron="0 9 * * *", time_zone="Europe/Paris", input={"kind": "daily"}
        )
        daily = client.get_schedule("daily")
        print(f"Daily report: next at {daily.next_slot.astimezone(PARIS):%H:%M} in Paris.")
        # and every second, skipping a slot while the previous report still runs
        client.create_schedule(
            "heartbeat", report, every=timedelta(seconds=1), input={"kind": "heartbeat"}
        )
        with runtime:
            deadline = time.monotonic() + 30
            while len(done(client)) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            client.pause_schedule("heartbeat")
        first = done(client)[0]
        print(f"Heartbeat instances: {len(done(client))} or more, such as {first.instance_id}")
        print(f"Its output: {first.serialized_output}")
        runs = client.get_schedule("heartbeat").recent_runs
        print(f"The schedule records its slots: {runs[-1].instance_id == first.instance_id}.")
        instance_id = client.trigger_schedule("daily")  # run it now, once, by hand
        print(f"Triggered by hand: {instance_id.split('@')[0]}@<now>")
        client.delete_schedule("heartbeat")
        client.delete_schedule("daily")
        print(f"Schedules left: {len(client.list_schedules())}.")


def done(client: wf.DaprWorkflowClient) -> list:
    states = client.list_workflows(status=wf.WorkflowStatus.COMPLETED, page_size=1000).states
    return sorted(
        (s for s in states if s.instance_id.startswith("heartbeat@")),
        key=lambda s: s.instance_id,
    )


if __name__ == "__main__":
    main()
