"""plan_sweep: what a runtime notes and fails among the work nobody holds (no store needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from treadle.runtime.apps import NAME_GRACE, SweepPlan, plan_sweep, waiting_note
from treadle.store.apps import WaitingWork, WorkerInfo, WorkerRecord, WorkKind

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
WAIT = timedelta(seconds=60)
ACTIVITY, WORKFLOW = WorkKind.ACTIVITY, WorkKind.WORKFLOW


def worker(
    owner: str,
    app: str,
    *,
    workflows: tuple[str, ...] | None = (),
    activities: tuple[str, ...] | None = (),
    ago: float = 0.0,
    stopped: bool = False,
) -> WorkerRecord:
    return WorkerRecord(
        WorkerInfo(owner, app, workflows, activities),
        seen_at=NOW - timedelta(seconds=ago),
        stopped=stopped,
    )


def work(
    kind: WorkKind,
    app: str,
    name: str,
    caller: str | None,
    *,
    waited: float = 0.0,
    started: bool = False,
) -> WaitingWork:
    return WaitingWork(kind, app, name, caller, started, NOW - timedelta(seconds=waited), 1)


def plan(workers: list[WorkerRecord], waiting: list[WaitingWork], app: str = "orders") -> SweepPlan:
    return plan_sweep(workers, waiting, app_id=app, now=NOW, app_wait=WAIT)


def test_work_a_live_worker_of_its_app_takes_is_left_alone() -> None:
    waiting = [
        work(ACTIVITY, "billing", "charge", "orders", waited=3600),
        work(WORKFLOW, "", "wf", None, waited=3600),
    ]
    workers = [
        worker("b", "billing", activities=("charge",)),
        worker("s", "", workflows=None),  # a sidecar takes any name
    ]
    result = plan(workers, waiting)
    assert (result.fails, result.notes) == ([], [])


def test_work_nobody_takes_within_its_app_is_noted_never_failed() -> None:
    typo = work(WORKFLOW, "orders", "odrer", None, waited=86_400)
    missing = work(ACTIVITY, "orders", "pack", "orders", waited=86_400)
    result = plan([worker("o", "orders", workflows=("order",))], [typo, missing])
    assert result.fails == []
    assert [w for w, _ in result.notes] == [typo, missing]
    note = {w.name: text for w, text in result.notes}
    assert "no running worker of app 'orders' has workflow 'odrer' registered" in note["odrer"]
    assert "runtime.register_activity in a runtime with app id 'orders'" in note["pack"]


def test_a_worker_of_another_app_does_not_count() -> None:
    call = work(ACTIVITY, "billing", "charge", "orders")
    result = plan([worker("x", "orders", activities=("charge",))], [call])
    assert [w for w, _ in result.notes] == [call]
    assert "app 'billing' has no running worker" in result.notes[0][1]


def test_a_dead_or_stopped_worker_does_not_count() -> None:
    call = work(ACTIVITY, "", "charge", "")
    killed = worker("k", "", activities=("charge",), ago=11)
    stopped = worker("s", "", activities=("charge",), stopped=True)
    for gone in (killed, stopped):
        assert [w for w, _ in plan([gone], [call]).notes] == [call]
    alive = worker("a", "", activities=("charge",), ago=9)
    assert plan([alive], [call]).notes == []


def test_a_call_to_an_app_without_workers_fails_after_app_wait() -> None:
    early = work(ACTIVITY, "billing", "charge", "orders", waited=59)
    late = work(ACTIVITY, "billing", "charge", "orders", waited=61)
    assert plan([], [early]).fails == []
    (failed,) = plan([], [late]).fails
    group, failure, before = failed
    assert group == late and before == NOW - WAIT
    assert failure.error_type == "TimeoutError"
    assert "no worker of app 'billing' took activity 'charge' within 60 s" in failure.message


def test_a_call_to_a_running_app_that_never_had_the_name_fails_after_the_grace() -> None:
    billing = worker("b", "billing", activities=("refund",))
    soon = work(ACTIVITY, "billing", "charge", "orders", waited=NAME_GRACE.total_seconds() - 1)
    later = work(ACTIVITY, "billing", "charge", "orders", waited=NAME_GRACE.total_seconds() + 1)
    assert plan([billing], [soon]).fails == []
    (failed,) = plan([billing], [later]).fails
    assert failed[1].error_type == "RegistrationError"
    assert "'charge' is not registered by any running worker of app 'billing'" in failed[1].message


def test_a_call_whose_worker_left_waits_app_wait_from_when_it_left() -> None:
    # The worker that had it stopped 30 s ago (a restart): the call waits app_wait from then.
    others = worker("b2", "billing", activities=("refund",))
    left = worker("b1", "billing", activities=("charge",), ago=30, stopped=True)
    call = work(ACTIVITY, "billing", "charge", "orders", waited=3600)
    assert plan([others, left], [call]).fails == []
    gone_long = worker("b1", "billing", activities=("charge",), ago=61, stopped=True)
    (failed,) = plan([others, gone_long], [call]).fails
    assert failed[1].error_type == "RegistrationError"  # (its app runs, without it)
    assert "waited 60 s" in failed[1].message


def test_only_the_calling_app_fails_its_calls() -> None:
    call = work(ACTIVITY, "billing", "charge", "orders", waited=3600)
    result = plan([], [call], app="shipping")
    assert result.fails == [] and [w for w, _ in result.notes] == [call]


def test_children_fail_only_before_they_start() -> None:
    unstarted = work(WORKFLOW, "shipping", "ship", "orders", waited=3600)
    started = work(WORKFLOW, "shipping", "ship", "orders", waited=3600, started=True)
    result = plan([], [unstarted, started])
    assert [f[0] for f in result.fails] == [unstarted]
    assert [w for w, _ in result.notes] == [started]
    assert "workflow 'ship'" in result.fails[0][1].message


def test_notes_name_the_app_or_its_absence() -> None:
    nobody = work(WORKFLOW, "", "wf", None)
    assert "the workers with no app id has no running worker" in waiting_note(
        nobody, app_runs=False
    )
    assert "(runtime.register_workflow)" in waiting_note(nobody, app_runs=True)
