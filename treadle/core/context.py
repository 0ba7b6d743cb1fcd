"""The contexts handed to user code: WorkflowContext and WorkflowActivityContext."""

from __future__ import annotations

import functools
import logging
import string
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from treadle.core.deterministic import DeterministicRandom, workflow_random, workflow_uuid
from treadle.core.fanout import when_all_bounded
from treadle.core.history import Propagation
from treadle.core.propagation import PropagatedHistory, PropagationScope, scope_value
from treadle.core.records import record_class
from treadle.core.retry import RetryPolicy
from treadle.core.tasks import CompletableTask, Task
from treadle.errors import RegistrationError

if TYPE_CHECKING:
    from treadle.core.replay import WorkflowExecution


def name_of(target: str | Callable[..., Any]) -> str:
    """The registered name of a workflow or activity given as a function or a name."""
    if isinstance(target, str):
        return target
    explicit = getattr(target, "_treadle_name", None)
    if isinstance(explicit, str):
        return explicit
    explicit = getattr(target, "_dapr_alternate_name", None)
    if isinstance(explicit, str):
        return explicit
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a function or a registered name, got {type(target).__name__}")
    return name


def _target_app(app_id: str | None) -> str | None:
    """The app a call names (None: the caller's own app; so is an empty name)."""
    if app_id is None:
        return None
    if not isinstance(app_id, str):
        raise TypeError(f"app_id is a str (an app id) or None, not {type(app_id).__name__}")
    return app_id or None


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def alternate_name(name: str | None = None) -> Callable[[F], F]:
    """Give a workflow or activity function the name it is registered under (the Dapr SDK's
    decorator; put it below ``@runtime.workflow`` or ``@runtime.activity``)::

        @runtime.workflow
        @wf.alternate_name("add")
        def add_numbers(ctx, pair): ...

    Args:
        name: the registered name (default: the function's own name).

    Raises:
        RegistrationError: the function has an alternate name already.
    """

    def decorate(fn: F) -> F:
        existing = getattr(fn, "_dapr_alternate_name", None)
        if existing is not None:
            raise RegistrationError(
                f"function {getattr(fn, '__name__', fn)!r} already has the alternate name "
                f"{existing!r}; give it one name only"
            )
        fn._dapr_alternate_name = name or fn.__name__  # type: ignore[attr-defined]
        return fn

    return decorate


class WorkflowContext:
    """What a workflow function receives as its first argument.

    Every method records an action in the workflow's history; time, ids and
    ``is_replaying`` come from that history, so the workflow stays deterministic.
    """

    __slots__ = ("_execution", "_random_count", "_uuid_count")

    def __init__(self, execution: WorkflowExecution) -> None:
        self._execution = execution
        # Calls so far in this run: the same in every replay, since the code makes the same
        # calls in the same order (see treadle.core.deterministic).
        self._uuid_count = 0
        self._random_count = 0

    @property
    def instance_id(self) -> str:
        """The id of this workflow instance."""
        return self._execution.instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        """The workflow clock: the time of the current turn, as recorded in history."""
        return self._execution.current_utc_datetime

    def now(self) -> datetime:
        """The workflow clock (:attr:`current_utc_datetime`): use it, never
        ``datetime.now()``, which gives another time on every replay."""
        return self._execution.current_utc_datetime

    def uuid4(self) -> uuid.UUID:
        """A new UUID that every replay gives again (the Dapr SDK's ``uuid4()``); use it,
        never ``uuid.uuid4()``, in workflow code. Each call gives another one."""
        value = workflow_uuid(self.instance_id, self.current_utc_datetime, self._uuid_count)
        self._uuid_count += 1
        return value

    def new_guid(self) -> uuid.UUID:
        """The same as :meth:`uuid4` (the name other durabletask SDKs use)."""
        return self.uuid4()

    def random(self) -> DeterministicRandom:
        """A random generator that every replay gives again, with the common methods of
        :class:`random.Random` (``random()``, ``randint``, ``choice``, ``shuffle``...); use
        it, never the ``random`` module, in workflow code. Each call gives a generator of its
        own (the Dapr SDK's gives the same numbers to every call of one turn)."""
        value = workflow_random(self.instance_id, self.current_utc_datetime, self._random_count)
        self._random_count += 1
        return value

    def random_int(self, min_value: int = 0, max_value: int = 2**31 - 1) -> int:
        """A random int N with ``min_value <= N <= max_value``, the same in every replay."""
        if min_value > max_value:
            raise ValueError(f"min_value ({min_value}) must be <= max_value ({max_value})")
        return self.random().randint(min_value, max_value)

    def random_choice(self, sequence: Sequence[T]) -> T:
        """A random element of a non-empty sequence, the same in every replay."""
        return self.random().choice(sequence)

    def random_string(self, length: int, *, alphabet: str | None = None) -> str:
        """A random string of ``length`` characters of ``alphabet`` (default: ASCII letters
        and digits), the same in every replay."""
        if length < 0:
            raise ValueError(f"length must be non-negative, not {length}")
        chars = alphabet if alphabet is not None else string.ascii_letters + string.digits
        if not chars:
            raise ValueError("alphabet must not be empty")
        rnd = self.random()
        return "".join(rnd.choice(chars) for _ in range(length))

    @property
    def is_replaying(self) -> bool:
        """Whether the code runs again over recorded history (log nothing then)."""
        return self._execution.is_replaying

    @property
    def execution_id(self) -> str:
        """The id of this run of the instance (changes with continue-as-new)."""
        return self._execution.execution_id

    def call_activity(
        self,
        activity: str | Callable[..., Any],
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        app_id: str | None = None,
        propagation: PropagationScope | None = None,
        timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
    ) -> Task[Any]:
        """Schedule an activity; yield the returned task to get its result.

        Args:
            activity: the activity function, or its registered name.
            input: a JSON-serializable input.
            retry_policy: retry failed attempts durably, if given.
            app_id: the app whose workers run the activity (all apps share one store); by
                default the instance's own app. A call the target app cannot take (none of
                its workers has the activity, or it has no running worker for a while) fails
                with :class:`~treadle.errors.TaskFailedError`, under ``retry_policy``.
            propagation: hand the activity this workflow's history (see
                :class:`~treadle.core.propagation.PropagationScope`); it reads it with
                ``ctx.get_propagated_history()``.
            timeout: fail each attempt that has run this long (start-to-close: counted from
                when a worker takes the attempt, so time spent waiting behind a queue's
                limits or for a free worker does not count, and each retry gets the whole
                timeout) with a :class:`~treadle.errors.TaskTimeoutError`, retried under
                ``retry_policy``; the running activity sees ``ctx.is_cancelled``, and its late
                result is dropped.
            heartbeat_timeout: for a long activity that calls ``ctx.heartbeat(details)``: a
                worker holds it at most this long past its last heartbeat, so the activity of
                a worker that died (or hangs) runs again after this, not after the whole
                lease, and the new attempt gets the last details (``ctx.heartbeat_details``).
        """
        return self._execution.call_activity(
            name_of(activity),
            input,
            retry_policy,
            scope_value(propagation),
            app_id=_target_app(app_id),
            timeout=timeout,
            heartbeat_timeout=heartbeat_timeout,
        )

    def map_activity(
        self,
        activity: str | Callable[..., Any],
        inputs: Iterable[Any],
        *,
        max_concurrent: int,
        retry_policy: RetryPolicy | None = None,
    ) -> Generator[Task[Any], Any, list[Any]]:
        """Call ``activity`` once per input, at most ``max_concurrent`` in flight; use with
        ``yield from``, which gives the results in the order of ``inputs`` (see
        :func:`treadle.core.fanout.when_all_bounded`)."""
        return when_all_bounded(
            (
                functools.partial(self.call_activity, activity, input=i, retry_policy=retry_policy)
                for i in inputs
            ),
            max_concurrent=max_concurrent,
        )

    def call_child_workflow(
        self,
        workflow: str | Callable[..., Any],
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        app_id: str | None = None,
        propagation: PropagationScope | None = None,
        timeout: timedelta | None = None,
    ) -> Task[Any]:
        """Start a child workflow; yield the returned task to get its result.

        Args:
            workflow: the workflow function, or its registered name.
            input: a JSON-serializable input.
            instance_id: the child's id (default ``f"{parent_id}:{seq:04x}"``, with the
                parent's id shortened and hashed where that would pass 256 characters).
            retry_policy: retry a failed child durably, if given.
            app_id: the app whose workers run the child (all apps share one store); by
                default the parent's own app. A child the target app cannot take fails the
                call as :meth:`call_activity` says.
            propagation: hand the child this workflow's history (see
                :class:`~treadle.core.propagation.PropagationScope`).
            timeout: fail the child (its run) with a TimeoutError if it has not finished this
                long after it started; the call then fails with a
                :class:`~treadle.errors.TaskFailedError` whose ``details.error_type`` is
                ``"TimeoutError"``, retried under ``retry_policy``.

        Raises:
            InvalidInputError: an ``instance_id`` or workflow name no instance can have (empty,
                with control characters, or too long; see :mod:`treadle.core.validation`).
        """
        return self._execution.call_child_workflow(
            name_of(workflow),
            input,
            instance_id,
            retry_policy,
            scope_value(propagation),
            app_id=_target_app(app_id),
            timeout=timeout,
        )

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]:
        """A durable timer that fires at ``fire_at`` (a UTC datetime, or a delay from now)."""
        return self._execution.create_timer(fire_at)

    def wait_for_external_event(
        self, name: str, *, timeout: timedelta | None = None
    ) -> CompletableTask[Any]:
        """Wait for an event raised on this instance; names match case-insensitively.

        Args:
            name: the event name.
            timeout: if given, the task fails with :class:`TimeoutError` after this long.
        """
        return self._execution.wait_for_external_event(name, timeout)

    def continue_as_new(self, new_input: Any = None, *, save_events: bool = False) -> None:
        """Restart this instance with a fresh history and ``new_input`` once the code returns.

        Args:
            new_input: the input of the next run.
            save_events: carry events received but not yet consumed over to the next run.
        """
        self._execution.continue_as_new(new_input, save_events)

    def is_patched(self, patch_name: str) -> bool:
        """Whether to take the patched path of a change made while instances were running.

        True for an instance that reaches this point for the first time (a new instance, or
        one past this point only now), and recorded in its history then, so it stays true in
        every replay; False for an instance whose history went past this point before the
        patch existed. Keep the unpatched path until no such instance is left::

            if ctx.is_patched("send-receipt"):
                yield ctx.call_activity(send_receipt, input=order)

        Patches are checked in order: once an instance recorded a patch, code that no longer
        evaluates it (or evaluates the recorded patches in another order) stalls the instance
        (STALLED) until code that does runs it.

        Args:
            patch_name: the patch's name, unique within the workflow.
        """
        return self._execution.is_patched(patch_name)

    def set_custom_status(self, custom_status: Any) -> None:
        """Publish a JSON-serializable status, visible to clients while the workflow runs."""
        self._execution.set_custom_status(custom_status)

    def get_propagated_history(self) -> PropagatedHistory | None:
        """The history the caller of this run propagated to it, or None if it propagated
        none (``call_child_workflow(..., propagation=...)``)."""
        return self._execution.propagated_history()

    @property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """A logger that stays silent while the workflow replays."""
        return self._execution.logger


@record_class
class WorkflowActivityContext:
    """What an activity function receives as its first argument.

    Attributes:
        workflow_id: the calling instance's id.
        task_id: the call's sequence id within the workflow run.
        task_execution_id: stable across retries of the same call: use it for idempotency.
        name: the activity's registered name.
        propagated: the history the caller propagated with the call, as stored (read it
            with :meth:`get_propagated_history`).
    """

    workflow_id: str
    task_id: int
    task_execution_id: str
    name: str = ""
    propagated: Propagation | None = None
    heartbeat_details: Any = None
    """The details of the last heartbeat of an attempt that did not finish (its worker
    died, or stopped heartbeating), to go on from; None if there was none."""
    cancelled: Callable[[], bool] = field(default=lambda: False, repr=False, compare=False)
    """Asked by :attr:`is_cancelled` (the runtime's flag for this run of the activity)."""
    record_heartbeat: Callable[[Any], None] = field(
        default=lambda details: None, repr=False, compare=False
    )
    """Called by :meth:`heartbeat` (the runtime's recorder for this run of the activity)."""

    def heartbeat(self, details: Any = None) -> None:
        """Say that the activity is alive, with JSON-serializable progress ``details``.

        With ``call_activity(..., heartbeat_timeout=...)``, each heartbeat keeps the activity
        from being taken over for that long, and its details go to the attempt that takes it
        over if this one dies (``heartbeat_details``). Each call writes to the store: call it
        every few seconds of work, not in a tight loop. If the activity has been taken over
        meanwhile, or its run ended, :attr:`is_cancelled` turns true. Without a heartbeat
        timeout it does nothing.
        """
        self.record_heartbeat(details)

    @property
    def is_cancelled(self) -> bool:
        """Whether the activity should stop: its instance was terminated or finished, or this
        attempt ran past its timeout. Its result will not be recorded; a long activity checks
        this between pieces of work and returns early (an ``async def`` activity is also
        cancelled: :class:`asyncio.CancelledError` is raised at its ``await``)."""
        return self.cancelled()

    def get_propagated_history(self) -> PropagatedHistory | None:
        """The history the calling workflow propagated to this call, or None if it
        propagated none (``call_activity(..., propagation=...)``)."""
        if self.propagated is None:
            return None
        return PropagatedHistory.from_propagation(self.propagated)

    def get_inner_context(self) -> WorkflowActivityContext:
        """This context (the Dapr SDK returns its engine's; treadle has only this one)."""
        return self
