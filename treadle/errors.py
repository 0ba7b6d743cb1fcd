"""Every public exception of treadle.

The tree::

    TreadleError
    ├── WorkflowError
    │   ├── TaskFailedError          an activity or child workflow failed (.details)
    │   │   └── TaskTimeoutError     an activity ran past its timeout (a TimeoutError too)
    │   ├── NonDeterminismError      workflow code changed under a running instance
    │   ├── WorkflowNotFoundError    no instance with that id
    │   ├── WorkflowAlreadyExistsError  an unfinished instance already has that id
    │   ├── WorkflowStateError       the instance's state forbids the call (purge a running one)
    │   ├── PropagationNotFoundError  a propagated history has no such workflow, activity or child
    │   └── CompensationError        a saga's compensation failed (.failures)
    ├── ScheduleError
    │   ├── ScheduleNotFoundError    no schedule with that id
    │   └── ScheduleAlreadyExistsError  a schedule already has that id
    ├── RegistrationError            unknown or duplicate workflow/activity name
    ├── InvalidInputError            bad input at an edge (HTTP, gRPC, CLI, payload)
    └── StoreError
        ├── LeaseLostError           another worker owns the instance now
        ├── SchemaVersionError       the database schema is newer than this code
        ├── StoreUnavailableError    the database cannot be reached (an outage: retried)
        └── StoreLostError           the database file was deleted or replaced under it

This module imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FailureDetails:
    """What went wrong in a failed task or workflow.

    Attributes:
        message: the exception's message.
        error_type: the exception's class name (qualified for non-builtins).
        stack_trace: the formatted traceback, if known.
    """

    message: str
    error_type: str
    stack_trace: str | None = None


class TreadleError(Exception):
    """Base class of every error treadle raises."""


class WorkflowError(TreadleError):
    """An error about a workflow instance."""


class TaskFailedError(WorkflowError):
    """An activity or child workflow failed; raised inside the calling workflow.

    Attributes:
        details: the failure's type, message and stack trace.
    """

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self._details = details

    @property
    def details(self) -> FailureDetails:
        """The failure's type, message and stack trace."""
        return self._details


class TaskTimeoutError(TaskFailedError, TimeoutError):
    """An activity call ran past its timeout (``call_activity(..., timeout=...)``) on its
    last attempt; raised inside the calling workflow. It is a :class:`TaskFailedError` and
    the built-in :class:`TimeoutError` alike, so either ``except`` catches it."""


class CompensationError(WorkflowError):
    """One or more compensations of a saga failed (after their retries); raised inside the
    workflow by ``Saga.compensate()``.

    Attributes:
        failures: each compensation's failure, in the order they ran.
    """

    def __init__(self, failures: list[TaskFailedError]) -> None:
        reasons = "; ".join(str(f) for f in failures)
        super().__init__(
            f"{len(failures)} compensation(s) failed: {reasons}; the steps they undo are "
            "still in effect: fix the cause and undo them by hand, or rerun the workflow"
        )
        self.failures = list(failures)


class NonDeterminismError(WorkflowError):
    """The workflow's code did something different from what its history recorded."""


class WorkflowNotFoundError(WorkflowError):
    """No workflow instance has the given id."""


class WorkflowAlreadyExistsError(WorkflowError):
    """An instance with this id exists and has not finished."""


class WorkflowStateError(WorkflowError):
    """The instance's current state does not allow the requested operation."""


class PropagationNotFoundError(WorkflowError):
    """A query of a propagated history found nothing of that name (see
    ``ctx.get_propagated_history()``)."""


class ScheduleError(TreadleError):
    """A schedule operation failed."""


class ScheduleNotFoundError(ScheduleError):
    """No schedule has that id."""


class ScheduleAlreadyExistsError(ScheduleError):
    """A schedule already has that id."""


class RegistrationError(TreadleError):
    """A workflow or activity name is unknown, or registered twice."""


class InvalidInputError(TreadleError):
    """Input from outside (HTTP, gRPC, CLI, a payload) is not valid."""


class StoreError(TreadleError):
    """The store failed."""


class LeaseLostError(StoreError):
    """This worker no longer holds the lease it tried to commit under."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of treadle understands."""


class StoreUnavailableError(StoreError):
    """The database could not be reached."""


class StoreLostError(StoreError):
    """The store's database file was deleted or replaced while it was open: what would be
    written now would go where no one reads it, so nothing is. A runtime stops; restore the
    file (or start on the new one) and restart the process."""
