"""A turn the store refuses for good (a value it cannot hold) fails its workflow, alone:
the turns committed with it go on, and nothing is retried for ever."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.errors import StoreError
from treadle.store.base import CommitOutcome, TurnCommit
from treadle.store.sqlite import SqliteStore

from .helpers import finish


class _RefusesPoison(SqliteStore):
    """Refuses, as a database refuses a value it cannot hold, any commit with a turn whose
    custom status says "poison"; counts the groups it refused."""

    refused_groups: list[int]

    def commit_turns(
        self, owner: str, turns: Sequence[TurnCommit], lease_s: float = 30.0
    ) -> list[CommitOutcome]:
        if any(t.custom_status and "poison" in t.custom_status for t in turns):
            self.refused_groups.append(len(turns))
            raise StoreError("the database cannot hold this value")
        return super().commit_turns(owner, turns, lease_s)


def _flagged(ctx: wf.WorkflowContext, flag: str) -> Generator[wf.Task[Any], Any, str]:
    ctx.set_custom_status(flag)
    done = yield ctx.call_activity("echo", input=flag)
    return str(done)


def test_a_refused_turn_fails_its_workflow_and_not_the_others(tmp_path: Path) -> None:
    store = _RefusesPoison(f"sqlite:///{tmp_path / 'treadle.db'}")
    store.refused_groups = []
    runtime = wf.WorkflowRuntime(store)
    runtime.register_workflow(_flagged, name="flagged")
    runtime.register_activity(lambda ctx, x: x, name="echo")
    with wf.WorkflowClient(store) as client:
        # started before the runtime: its first claim takes both, one group commit for both
        good = client.schedule_new_workflow("flagged", input="fine")
        bad = client.schedule_new_workflow("flagged", input="poison")
        with runtime:
            bad_state = finish(client, bad)
            good_state = finish(client, good)
    assert good_state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert good_state.serialized_output == '"fine"'
    assert bad_state.runtime_status is wf.WorkflowStatus.FAILED
    failure = bad_state.failure_details
    assert failure is not None and failure.error_type == "StoreError"
    assert "could not record a step" in failure.message and "cannot hold" in failure.message
    assert store.refused_groups[0] == 2  # the group, then the poisoned turn alone
    assert store.refused_groups[1:] == [1]


def _parent(ctx: wf.WorkflowContext, flag: str) -> Generator[wf.Task[Any], Any, str]:
    try:
        return str((yield ctx.call_child_workflow("flagged", input=flag)))
    except wf.TaskFailedError as exc:
        return f"child failed: {exc.details.message}"


def test_a_child_whose_turn_is_refused_fails_its_parent_s_call(tmp_path: Path) -> None:
    store = _RefusesPoison(f"sqlite:///{tmp_path / 'treadle.db'}")
    store.refused_groups = []
    runtime = wf.WorkflowRuntime(store)
    runtime.register_workflow(_flagged, name="flagged")
    runtime.register_workflow(_parent, name="parent")
    runtime.register_activity(lambda ctx, x: x, name="echo")
    with runtime, wf.WorkflowClient(store) as client:
        state = finish(client, client.schedule_new_workflow("parent", input="poison"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.serialized_output is not None
    assert "child failed: the store could not record a step" in state.serialized_output


@pytest.mark.postgres
def test_a_character_a_latin1_database_cannot_hold_fails_the_workflow(
    postgres_url: str,
) -> None:
    """The real case on PostgreSQL: an activity returns text its LATIN1 database cannot
    store; the workflow fails saying why instead of retrying the commit for ever."""
    import psycopg

    name = f"treadle_latin1_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    try:
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}?schema=t"
        runtime = wf.WorkflowRuntime(url)
        runtime.register_workflow(_flagged, name="flagged")
        runtime.register_activity(lambda ctx, x: x + " \u20ac", name="echo")
        with runtime, wf.WorkflowClient(url) as client:
            iid = client.schedule_new_workflow("flagged", input="café")
            state = finish(client, iid)
            assert state.runtime_status is wf.WorkflowStatus.FAILED
            assert state.failure_details is not None
            assert "has no equivalent in encoding" in state.failure_details.message
            assert state.serialized_input == '"café"'
        runtime.store.close()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


class _ClaimsFailAWhile(SqliteStore):
    """Its claims of instances fail (a store error that is not an outage) until ``healed``
    is set."""

    healed = False

    def claim_orchestrations(self, *args: Any, **kwargs: Any) -> Any:
        if not self.healed:
            raise StoreError("the claim statement failed")
        return super().claim_orchestrations(*args, **kwargs)


class _ActivityClaimsFailAWhile(SqliteStore):
    """Its claims of activity tasks fail until ``healed`` is set."""

    healed = False

    def claim_activities(self, *args: Any, **kwargs: Any) -> Any:
        if not self.healed:
            raise StoreError("the claim statement failed")
        return super().claim_activities(*args, **kwargs)


@pytest.mark.parametrize("failing", [_ClaimsFailAWhile, _ActivityClaimsFailAWhile])
def test_a_dispatcher_error_that_repeats_is_shown_whole_once_and_backs_off(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failing: type[_ClaimsFailAWhile] | type[_ActivityClaimsFailAWhile],
) -> None:
    """A claim that fails is retried after the dispatcher's pause (the claim stays due), the
    pauses double, and the error is shown whole once."""
    store = failing(f"sqlite:///{tmp_path / 'treadle.db'}")
    runtime = wf.WorkflowRuntime(store)
    runtime.register_workflow(_flagged, name="flagged")
    runtime.register_activity(lambda ctx, x: x, name="echo")

    def errors() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "dispatcher error" in r.getMessage()]

    with caplog.at_level("WARNING", logger="treadle.runtime"), runtime:
        # (the failing rounds come as fast as the pauses let them; a slow machine only
        # delays them, so the test waits for four, bounded, rather than for a fixed time)
        deadline = time.monotonic() + 30.0
        while len(errors()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        store.healed = True
        with wf.WorkflowClient(store) as client:
            state = finish(client, client.schedule_new_workflow("flagged", input="fine"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    seen = errors()
    assert len(seen) >= 4, f"only {len(seen)} dispatcher errors were logged in 30 s"
    assert [r.exc_info is not None for r in seen[:2]] == [True, False]
    assert sum(r.exc_info is not None for r in seen) == 1
    # backing off: the pauses between the rounds double from 0.05 s (the log's clock and the
    # pause's differ a little: a tenth of slack)
    gaps = [b.created - a.created for a, b in itertools.pairwise(seen[:4])]
    for i, gap in enumerate(gaps):
        assert gap >= 0.9 * 0.05 * 2**i, f"pause {i} lasted {gap:.3f} s: {gaps}"
