"""Testing workflows with pytest: a time-skipping environment and replays of saved histories.

``test_subscription_renews_after_a_month`` runs a workflow that waits 30 days and retries a
failing charge with hour-long backoffs: on the environment's virtual clock it takes
milliseconds. ``test_a_fake_card_processor`` replaces the activity with a fake for one test.
``test_todays_code_replays_saved_histories`` replays a history exported from a run (as
``treadle workflow export ID > run.json`` does in production) against today's code, and
``test_a_breaking_change_is_caught`` shows the Replayer catching a deploy that changes the
workflow under it.

Run: ``python examples/testing_workflows.py`` (it runs pytest on itself), or
``python -m pytest examples/testing_workflows.py``.
"""

import sys
from datetime import timedelta
from pathlib import Path

import pytest

import treadle as wf
from treadle.testing import DEFAULT_START, Replayer, WorkflowTestEnvironment

RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(hours=1), max_number_of_attempts=5, backoff_coefficient=2.0
)
declines: list[str] = []


def charge(ctx: wf.WorkflowActivityContext, customer: str) -> str:
    if len(declines) < 2:  # the card processor is down for the first two attempts
        declines.append(customer)
        raise ConnectionError("card processor unavailable")
    return f"charged {customer}"


def subscription(ctx: wf.DaprWorkflowContext, customer: str):
    yield ctx.create_timer(timedelta(days=30))
    receipt = yield ctx.call_activity(charge, input=customer, retry_policy=RETRY)
    return {"receipt": receipt, "renewed_at": ctx.current_utc_datetime.isoformat()}


def test_subscription_renews_after_a_month(tmp_path: Path) -> None:
    declines.clear()
    with WorkflowTestEnvironment() as env:  # memory store, virtual clock, runtime started
        env.register_workflow(subscription)
        env.register_activity(charge)
        iid = env.client.schedule_new_workflow(subscription, input="ada")
        state = env.client.wait_for_workflow_completion(iid)  # timers skip
        # save the run, as `treadle workflow export ID > run.json` does in production
        (tmp_path / "run.json").write_text(env.client.export_workflow_history(iid))
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED
    renewed = DEFAULT_START + timedelta(days=30, hours=3)  # 30 days, then retries at 1 h, 2 h
    assert state.serialized_output == (
        f'{{"receipt":"charged ada","renewed_at":"{renewed.isoformat()}"}}'
    )
    result = Replayer([subscription]).replay((tmp_path / "run.json").read_text())
    assert result.ok, result.divergence


def test_a_fake_card_processor() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(subscription)
        env.replace_activity(charge, lambda ctx, customer: f"fake receipt for {customer}")
        iid = env.client.schedule_new_workflow(subscription, input="bob")
        state = env.client.wait_for_workflow_completion(iid)
    assert '"receipt":"fake receipt for bob"' in state.serialized_output


def saved_history() -> str:
    """A history as production would have saved it (here: one run in the environment)."""
    with WorkflowTestEnvironment() as env:
        env.register_workflow(subscription)
        env.replace_activity(charge, lambda ctx, customer: "ok")
        iid = env.client.schedule_new_workflow(subscription, input="cy")
        env.client.wait_for_workflow_completion(iid)
        return env.client.export_workflow_history(iid)


def test_todays_code_replays_saved_histories() -> None:
    result = Replayer([subscription]).replay([saved_history(), saved_history()])
    assert result.ok, result.divergence


def test_a_breaking_change_is_caught() -> None:
    def subscription(ctx: wf.DaprWorkflowContext, customer: str):  # the next release's code
        yield ctx.create_timer(timedelta(days=28))  # fine
        yield ctx.call_activity("notify", input=customer)  # new: breaks running instances
        receipt = yield ctx.call_activity(charge, input=customer, retry_policy=RETRY)
        return {"receipt": receipt}

    result = Replayer([subscription]).replay(saved_history())
    assert not result.ok
    print(f"\nCaught: {result.divergence}")
    assert "history recorded TaskScheduled (call_activity('charge'))" in str(result.divergence)
    assert "called call_activity('notify')" in str(result.divergence)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
