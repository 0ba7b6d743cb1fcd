"""WorkflowClient waits: a change that lands while the client reads is not missed."""

from __future__ import annotations

import time
from pathlib import Path

import treadle as wf
from treadle.core.history import OrchestrationStatus, OrchestratorStarted
from treadle.store.base import InstanceRecord, NewInstance, TurnCommit
from treadle.store.sqlite import SqliteStore


class _FinishesDuringTheFirstRead(SqliteStore):
    """Completes the instance right after the client's first read, which it then returns:
    the client sees it unfinished, and the commit lands before the client starts waiting."""

    raced = False

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        record = super().get_instance(instance_id)
        if not self.raced:
            self.raced = True
            (item,) = self.claim_orchestrations("w", 1, 30)
            done = TurnCommit(
                instance_id=instance_id,
                expected_version=item.instance.version,
                new_events=[OrchestratorStarted()],
                history_start=0,
                status=OrchestrationStatus.COMPLETED,
                execution_id=item.instance.execution_id,
                output='"done"',
                consumed_messages=[m.id for m in item.messages],
            )
            (outcome,) = self.commit_turns("w", [done])
            assert outcome.ok
        return record


def test_a_finish_between_the_read_and_the_wait_wakes_the_client(tmp_path: Path) -> None:
    store = _FinishesDuringTheFirstRead(f"sqlite:///{tmp_path / 'treadle.db'}")
    store.create_instance(NewInstance("o-1", "wf", None, "o-1-e1"))
    with wf.WorkflowClient(store) as client:
        started = time.monotonic()
        state = client.wait_for_workflow_completion("o-1", timeout_in_seconds=5)
        elapsed = time.monotonic() - started
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert elapsed < 0.25  # not the client's 0.5 s re-check: the commit woke it
