"""Workflow versioning as Dapr 1.18 has it: named versions and patches.

Both are recorded where daprd records them, in the ``version`` of each turn's
``OrchestratorStarted`` (:class:`~treadle.core.history.WorkflowVersion`):

- **Named versions.** Several functions registered under one workflow name, each with a version
  name, one of them the latest (:class:`VersionedWorkflow`). A new instance runs the latest;
  its turns record that version's name, and a replay runs the version recorded in the first
  turn, whatever is the latest by then.
- **Patches.** ``ctx.is_patched("name")`` is true for code running for the first time and
  false for code replaying a history that ran before the patch existed; a patch found true is
  recorded in the turn where that happened, so it stays true in every later replay.

A turn's outcome is then checked against the history the way daprd checks an SDK worker's
answer (:func:`settle_turn`): a worker that has no code for the recorded version, or whose code
no longer evaluates the recorded patches in the recorded order, **stalls** the instance instead
of committing the turn. A stalled instance keeps its new events for a later turn and goes on
once a worker with the right code takes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from treadle.core.actions import Action, CompleteOrchestration, ReportVersionNotAvailable
from treadle.core.history import (
    EPOCH,
    ExecutionStalled,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    WorkflowVersion,
    run_timeout_failure,
)
from treadle.core.records import record_class
from treadle.errors import RegistrationError

PATCH_MISMATCH = "PATCH_MISMATCH"
"""Stall reason: the code evaluates other patches, or in another order, than history records."""

VERSION_NOT_AVAILABLE = "VERSION_NOT_AVAILABLE"
"""Stall reason: the worker has no code for the workflow version the instance runs."""


@record_class
class Stall:
    """Why an instance cannot go on with the code at hand (the durabletask stall reasons).

    Attributes:
        reason: :data:`PATCH_MISMATCH` or :data:`VERSION_NOT_AVAILABLE`.
        description: what was recorded and what the code did, for people.
    """

    reason: str
    description: str

    def to_event(self, timestamp: datetime = EPOCH) -> ExecutionStalled:
        """The ``ExecutionStalled`` history event that records this stall."""
        return ExecutionStalled(
            timestamp=timestamp, reason=self.reason, description=self.description
        )


class VersionedWorkflow:
    """The versions of one workflow name (``register_versioned_workflow``).

    Versions may be added while a runtime runs (a new latest version for new instances);
    instances already running keep the version they started with.

    Args:
        name: the workflow name the versions share.
    """

    __slots__ = ("latest", "name", "versions")

    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: dict[str, Callable[..., Any]] = {}
        self.latest: str | None = None

    def add(self, version_name: str, fn: Callable[..., Any], *, is_latest: bool) -> None:
        """Add a version; with ``is_latest`` it becomes the one new instances run.

        Raises:
            RegistrationError: that version name is taken by another function.
        """
        existing = self.versions.get(version_name)
        if existing is not None and existing is not fn:
            raise RegistrationError(
                f"version {version_name!r} of workflow {self.name!r} is already registered to "
                f"{existing!r}; give the new version another version_name"
            )
        self.versions[version_name] = fn
        if is_latest:
            self.latest = version_name

    def resolve(self, recorded: str | None) -> tuple[str, Callable[..., Any]] | None:
        """The version to run and its function: the ``recorded`` one (from history), or the
        latest for a new instance. None when the recorded version is not registered here.

        Raises:
            RegistrationError: a new instance, and no version is marked as the latest.
        """
        if recorded:
            fn = self.versions.get(recorded)
            return None if fn is None else (recorded, fn)
        if self.latest is None:
            raise RegistrationError(
                f"workflow {self.name!r} has versions {sorted(self.versions)} but none is the "
                "latest, so a new instance has none to run: register one with is_latest=True"
            )
        return self.latest, self.versions[self.latest]


_NO_NAMES: frozenset[str] = frozenset()


class Patches:
    """The patches of one run: those its history recorded and those its code found true.

    ``is_patched`` answers as the Dapr SDK does: the same answer every time within a run; true
    for a patch history recorded, false for one evaluated while replaying history that did not
    record it, true otherwise (code running for the first time).
    """

    __slots__ = ("_answers", "_known", "found", "recorded")

    def __init__(self) -> None:
        self.recorded: list[str] = []
        """Patches the run's history recorded so far, in order (repeats included)."""
        self.found: list[str] = []
        """Every evaluation found true, in order (what the worker reports, as the SDK does)."""
        self._known: set[str] | frozenset[str] = _NO_NAMES  # (a set from the first patch)
        self._answers: dict[str, bool] = {}

    def on_turn(self, version: WorkflowVersion | None) -> None:
        """Take in the patches a recorded turn's ``OrchestratorStarted`` carries."""
        if version is not None and version.patches:
            self.recorded.extend(version.patches)
            self._known = self._known.union(version.patches)

    def is_patched(self, name: str, *, replaying: bool) -> bool:
        """Whether the code takes the patched path (see the class docstring)."""
        answer = self._answers.get(name)
        if answer is None:
            answer = name in self._known or not replaying
            self._answers[name] = answer
        if answer:
            self.found.append(name)
        return answer

    def confirm(self) -> None:
        """The turn's new patches were committed: they are recorded history now."""
        if not self.found:  # (none found: none new; most runs use no patch)
            return
        fresh = new_patches(self.recorded, self.found)
        if fresh:
            self.recorded.extend(fresh)
            self._known = self._known.union(fresh)


def recorded_version_name(history: Iterable[HistoryEvent]) -> str | None:
    """The version name the run's first turn recorded (None for an unversioned run)."""
    for event in history:
        if isinstance(event, OrchestratorStarted):
            return event.version.name if event.version is not None else None
    return None


def recorded_patches(history: Iterable[HistoryEvent]) -> list[str]:
    """Every patch the run's turns recorded, in order."""
    return [
        patch
        for event in history
        if isinstance(event, OrchestratorStarted) and event.version is not None
        for patch in event.version.patches
    ]


def new_patches(recorded: Sequence[str], reported: Sequence[str]) -> tuple[str, ...]:
    """The patches of ``reported`` not yet in ``recorded`` (counted with repeats, in order):
    what a turn records (daprd's compaction)."""
    if len(reported) >= len(recorded) and list(reported[: len(recorded)]) == list(recorded):
        return tuple(reported[len(recorded) :])  # (the usual case: the recorded ones first)
    left = Counter(recorded)
    fresh: list[str] = []
    for patch in reported:
        if left[patch] > 0:
            left[patch] -= 1
        else:
            fresh.append(patch)
    return tuple(fresh)


def patch_mismatch(recorded: Sequence[str], reported: Sequence[str]) -> Stall | None:
    """A :data:`PATCH_MISMATCH` stall unless the patches history recorded begin the patches
    the code found true, in the same order (daprd's rule); None when they do."""
    if not recorded or list(reported[: len(recorded)]) == list(recorded):
        return None
    return Stall(
        PATCH_MISMATCH,
        f"Patch mismatch. History patches: [{', '.join(recorded)}], current patches: "
        f"[{', '.join(reported)}]. The instance waits for a worker whose code evaluates "
        "ctx.is_patched for the recorded patches in the recorded order.",
    )


@record_class
class SettledTurn:
    """What to commit for a turn, once checked against the run's history.

    Attributes:
        new_events: the turn's events, its ``OrchestratorStarted`` carrying the version to
            record (unchanged when there is none, or when the turn stalls).
        actions: the actions to commit (none when the turn stalls).
        stall: why the instance stalls instead, or None.
    """

    new_events: list[HistoryEvent]
    actions: list[Action]
    stall: Stall | None = None


def settle_turn(
    new_events: Sequence[HistoryEvent],
    actions: Sequence[Action],
    *,
    recorded: Sequence[str],
    recorded_name: str | None,
    reported: WorkflowVersion | None,
) -> SettledTurn:
    """Check a turn's outcome against history, as daprd checks an SDK worker's answer.

    The turn stalls when the worker reported that it has no code for the recorded version
    (``ReportVersionNotAvailable``) or when its patches do not continue the recorded ones
    (:func:`patch_mismatch`), except that a termination among the new events still ends the
    instance: a stalled instance can always be terminated. Otherwise the version and the
    turn's new patches are recorded in its ``OrchestratorStarted``.

    Args:
        new_events: the turn's input events (``OrchestratorStarted`` first).
        actions: the actions the code asked for.
        recorded: the patches the run's history recorded (:func:`recorded_patches`).
        recorded_name: the version name the run's history recorded, if any.
        reported: the version the worker ran and every patch it found true, in order.
    """
    unavailable = False
    for action in actions:  # (a plain loop: this is every turn)
        if isinstance(action, ReportVersionNotAvailable):
            unavailable = True
            break
    if reported is None and not recorded and not unavailable:
        # (an unversioned run that found no patch: nothing to check, nothing to record)
        return SettledTurn(list(new_events), list(actions))
    stall: Stall | None = None
    if unavailable:
        stall = Stall(VERSION_NOT_AVAILABLE, f"Version not available: {recorded_name or ''}")
    else:
        stall = patch_mismatch(recorded, reported.patches if reported is not None else ())
    if stall is not None:
        terminate = next((e for e in new_events if isinstance(e, ExecutionTerminated)), None)
        if terminate is None:
            return SettledTurn(list(new_events), [], stall)
        kept = [a for a in actions if not isinstance(a, ReportVersionNotAvailable)]
        if not any(_is_termination(a) for a in kept):
            kept = [_terminated(terminate)]
        return SettledTurn(list(new_events), kept)
    return SettledTurn(_with_version(new_events, recorded, reported), list(actions))


def _is_termination(action: Action) -> bool:
    return (
        isinstance(action, CompleteOrchestration)
        and action.status is OrchestrationStatus.TERMINATED
    )


def _terminated(event: ExecutionTerminated) -> CompleteOrchestration:
    if event.timed_out:
        failure = run_timeout_failure("", None)
        return CompleteOrchestration(id=-1, status=OrchestrationStatus.FAILED, failure=failure)
    return CompleteOrchestration(id=-1, status=OrchestrationStatus.TERMINATED, result=event.input)


def _with_version(
    new_events: Sequence[HistoryEvent],
    recorded: Sequence[str],
    reported: WorkflowVersion | None,
) -> list[HistoryEvent]:
    events = list(new_events)
    if reported is None:
        return events
    version = WorkflowVersion(reported.name, new_patches(recorded, reported.patches))
    if version.name is None and not version.patches:
        return events
    for i, event in enumerate(events):
        if isinstance(event, OrchestratorStarted):
            events[i] = OrchestratorStarted(
                event_id=event.event_id, timestamp=event.timestamp, version=version
            )
            break
    return events
