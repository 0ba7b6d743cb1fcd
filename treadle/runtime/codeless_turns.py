"""Commits of turns that run no workflow code: a failure, a finished instance's messages
consumed, a stall.

The runtime fails an instance whose turn it could not run, consumes what comes for an
instance already finished, and stalls one for want of code for its version or patches (see
:mod:`treadle.core.versioning`), for local workflows and SDK workers alike; these build the
commits of such turns.

Threads: any. These are functions of their arguments only (no state; the caller gives the
turn's time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from treadle.core.actions import CompleteOrchestration
from treadle.core.history import (
    ExecutionStalled,
    HistoryEvent,
    OrchestrationStatus,
    ParentInfo,
    SubOrchestrationInstanceCreated,
)
from treadle.core.versioning import Stall
from treadle.errors import FailureDetails
from treadle.runtime.turns import TurnInput, result_for_parent
from treadle.store.base import TurnCommit

__all__ = [
    "children_created",
    "failed_turn",
    "is_recorded_stall",
    "stall_commit",
    "terminal_commit",
]


def failed_turn(
    instance_id: str,
    version: int,
    history_start: int,
    execution_id: str,
    failure: FailureDetails,
    consumed_messages: Sequence[int],
    *,
    now: datetime,
    consumed_activities: Sequence[int] = (),
    cancel_activities: bool = False,
    parent: ParentInfo | None = None,
) -> TurnCommit:
    """A turn that fails its instance without running its workflow (no new events): it
    consumes the given messages and activity results, lets go of the instance, and tells
    the parent workflow, if any, that its child failed (at ``now``)."""
    told = []
    if parent is not None:
        ending = CompleteOrchestration(id=-1, status=OrchestrationStatus.FAILED, failure=failure)
        told.append(result_for_parent(parent, ending, now))
    return TurnCommit(
        instance_id=instance_id,
        expected_version=version,
        new_events=[],
        history_start=history_start,
        status=OrchestrationStatus.FAILED,
        execution_id=execution_id,
        failure=failure,
        consumed_messages=consumed_messages,
        consumed_activities=consumed_activities,
        cancel_activities=cancel_activities,
        new_messages=told,
    )


def children_created(history: Sequence[HistoryEvent]) -> list[str]:
    """Ids of the child instances a run's history created."""
    return [e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated)]


def terminal_commit(
    turn: TurnInput,
    *,
    status: OrchestrationStatus,
    output: str | None,
    failure: FailureDetails | None,
    custom_status: str | None,
    consumed_messages: Sequence[int],
) -> TurnCommit:
    """A commit that only consumes messages of a finished instance, changing nothing else."""
    return TurnCommit(
        instance_id=turn.instance_id,
        expected_version=turn.version,
        new_events=[],
        history_start=turn.history_len,
        status=status,
        execution_id=turn.execution_id,
        output=output,
        failure=failure,
        custom_status=custom_status,
        consumed_messages=consumed_messages,
    )


def stall_commit(
    turn: TurnInput,
    stall: Stall,
    *,
    now: datetime,
    custom_status: str | None,
) -> TurnCommit:
    """A turn that stalls its instance instead of going on (see
    :mod:`treadle.core.versioning`): it records ``ExecutionStalled``, sets the status to
    STALLED with the reason as the failure details, keeps the custom status as it was, and
    consumes nothing, so the turn's messages wait in the inbox for a worker with the code."""
    return TurnCommit(
        instance_id=turn.instance_id,
        expected_version=turn.version,
        new_events=[stall.to_event(now)],
        history_start=turn.history_len,
        status=OrchestrationStatus.STALLED,
        execution_id=turn.execution_id,
        failure=FailureDetails(message=stall.description, error_type=stall.reason),
        custom_status=custom_status,
    )


def is_recorded_stall(history: Sequence[HistoryEvent], stall: Stall) -> bool:
    """Whether the run's history already ends with this stall (then nothing is committed
    again: the instance is only let go, as daprd records a repeated stall once)."""
    last = history[-1] if history else None
    return (
        isinstance(last, ExecutionStalled)
        and last.reason == stall.reason
        and last.description == stall.description
    )
