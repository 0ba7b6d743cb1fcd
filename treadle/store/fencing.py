"""The fence of a turn's commit, and why a store refuses a turn: one rule for every store and
every commit path.

A turn is committed only if its owner holds the instance's unexpired lease, the instance is
at the version the turn was computed from, and every activity result it records still has its
task row (a result is recorded by whoever deletes that row). A turn that creates its instance
(:attr:`~treadle.store.base.TurnCommit.create`) is committed only if the id is free.

Stores check the fence where they write (in SQL, in the statement that updates the
instance's row), and take the reason for a refusal from :func:`refusal`, so that every path
of every store refuses the same turns with the same words.
"""

from __future__ import annotations

from treadle.core.records import record_class
from treadle.store.base import ID_TAKEN, TurnCommit

__all__ = ["DELIVERED", "GONE", "Fence", "refusal", "refused_because"]

GONE = "the instance no longer exists"
"""The refusal of a turn whose instance was deleted (purged) meanwhile."""

DELIVERED = "an activity result in the turn was already delivered (its task is gone)"
"""The refusal of a turn recording an activity result whose task row is gone."""

_MOVED_ON = "the instance changed while the turn was being committed (its lease or version)"


@record_class
class Fence:
    """An instance's row as a turn's commit is fenced on it.

    Attributes:
        version: the instance's version.
        lease_owner: who holds its lease, if anyone.
        lease_live: the lease has not expired (on the store's clock).
    """

    version: int
    lease_owner: str | None
    lease_live: bool


def refusal(
    turn: TurnCommit, owner: str, fence: Fence | None, *, tasks_present: bool = True
) -> str | None:
    """Why the store refuses ``turn`` from ``owner``, or None if it accepts it.

    Args:
        fence: the instance's row (None: there is none).
        tasks_present: every activity task row whose result the turn records is there.
    """
    if turn.create is not None:
        return ID_TAKEN if fence is not None else None
    if fence is None:
        return GONE
    if fence.lease_owner is None:
        return "nobody holds the instance's lease (it was released)"
    if fence.lease_owner != owner:
        return f"lease held by {fence.lease_owner!r}"
    if not fence.lease_live:
        return "the lease expired"
    if fence.version != turn.expected_version:
        return (
            f"the instance changed since it was read (version {fence.version}, the turn "
            f"was computed from version {turn.expected_version})"
        )
    if not tasks_present:
        return DELIVERED
    return None


def refused_because(
    turn: TurnCommit, owner: str, fence: Fence | None, *, tasks_present: bool = True
) -> str:
    """Why the store refused ``turn``, read after the refusal (the instance's row as it is
    now): :func:`refusal`, or, if the row no longer shows why (another commit changed it
    since), that the instance changed meanwhile. A creating turn is refused for its id."""
    if turn.create is not None:
        return ID_TAKEN
    return refusal(turn, owner, fence, tasks_present=tasks_present) or _MOVED_ON
