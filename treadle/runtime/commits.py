"""The group commit of a round's turns, and what happens when the store refuses one.

The turns of a round go to the store in one call. If the store refuses the statement itself
(not an outage: a value it cannot hold, say), they are committed one by one, and the workflow
whose turn the store refuses is failed alone: retried, that turn would fail for ever and
hold up the turns committed with it. A start's first turn that creates its instance (see
:mod:`treadle.runtime.starts`) is only refused: there is no instance to fail, and the
client's start through the store says what was wrong.

Threads: the one that holds the engine lock. No state of its own: it calls the store and
rewrites the refused :class:`~treadle.runtime.pending.PendingTurn` entries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from treadle.clock import Clock, utcnow
from treadle.errors import FailureDetails, StoreError, StoreUnavailableError
from treadle.runtime.codeless_turns import failed_turn
from treadle.runtime.options import RuntimeOptions
from treadle.runtime.pending import PendingTurn
from treadle.store.base import CommitOutcome, Store, TurnCommit

__all__ = ["commit_or_isolate"]

logger = logging.getLogger(__name__)


def commit_or_isolate(
    store: Store,
    options: RuntimeOptions,
    pending: Mapping[str, PendingTurn],
    commits: Sequence[TurnCommit],
    clock: Clock,
) -> list[CommitOutcome]:
    """Commit ``commits`` (the turns of ``pending``) at once, or one by one if the store
    refuses them, failing the instance of each turn it refuses (see the module); ``clock``
    dates the failures.

    Raises:
        StoreUnavailableError: the store is out of reach (the round is retried).
    """
    try:
        return store.commit_turns(options.owner, commits, options.lease_s)
    except StoreUnavailableError:
        raise
    except StoreError as exc:
        if len(commits) == 1 and commits[0].create is None:
            return [_refused(store, options, pending[commits[0].instance_id], exc, clock)]
    outcomes: list[CommitOutcome] = []
    for commit in commits:
        try:
            outcomes.extend(store.commit_turns(options.owner, [commit], options.lease_s))
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            if commit.create is not None:  # a start: not taken (see the module)
                outcomes.append(CommitOutcome(commit.instance_id, ok=False, error=str(exc)))
            else:
                outcomes.append(_refused(store, options, pending[commit.instance_id], exc, clock))
    return outcomes


def _refused(
    store: Store, options: RuntimeOptions, entry: PendingTurn, exc: StoreError, clock: Clock
) -> CommitOutcome:
    """Fail the instance whose turn the store refused: the turn's messages and activity
    results are consumed, its activities cancelled, and none of its events kept (they may
    hold what the store refused)."""
    commit = entry.commit
    assert commit is not None
    logger.error(
        "the store refused the turn of workflow instance %s; failing the instance: %s",
        entry.instance_id,
        exc,
    )
    reason = str(exc).encode("ascii", "backslashreplace").decode()
    failed = failed_turn(
        commit.instance_id,
        commit.expected_version,
        commit.history_start,
        commit.execution_id,
        FailureDetails(
            error_type=type(exc).__name__,
            message=f"the store could not record a step of this workflow: {reason}",
        ),
        commit.consumed_messages,
        now=utcnow(clock),
        consumed_activities=commit.consumed_activities,
        cancel_activities=True,
        parent=entry.cached.execution.parent if entry.cached is not None else None,
    )
    entry.commit, entry.output = failed, None  # (after the commit: nothing left to run)
    try:
        (outcome,) = store.commit_turns(options.owner, [failed], options.lease_s)
    except StoreUnavailableError:
        raise
    except StoreError as again:
        logger.error("could not fail workflow instance %s either: %s", entry.instance_id, again)
        return CommitOutcome(entry.instance_id, ok=False, error=str(again))
    return outcome
