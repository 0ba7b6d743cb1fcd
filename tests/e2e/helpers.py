"""Helpers for the end-to-end tests: waiting on conditions, gates for activities, histories."""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import treadle as wf

T = TypeVar("T")
R = TypeVar("R")

Workflow = Generator[wf.Task[Any], Any, R]
"""What a workflow function returns: a generator that yields tasks, is sent their results
and returns the workflow's output, of type ``R``."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    *,
    interval: float = 0.01,
    what: str = "",
    state: Callable[[], object] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Wait only for what the test made sure will come (an event it raised, work it scheduled);
    for a count that grows, use :func:`wait_for_count`, which checks that the target is
    reachable.

    Args:
        predicate: polled every ``interval`` seconds.
        timeout: seconds before giving up.
        interval: seconds between polls.
        what: what is awaited, for the failure message (default: the predicate's source).
        state: called once on timeout; what it returns goes into the failure message (the
            state that explains why nothing came: statuses, leases, a process's exit code).

    Raises:
        AssertionError: ``timeout`` seconds passed first; the message says what was awaited,
            the predicate's last value (unless a bool or None) and, with ``state``, what it
            returned then.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout} s waiting for {what or _source(predicate)}"
            if value is not None and not isinstance(value, bool):
                message += f" (last value {value!r})"
            if state is not None:
                message += f"; state then: {state()}"
            raise AssertionError(message)
        time.sleep(interval)


def wait_for_count(
    count: Callable[[], int],
    at_least: int,
    *,
    reachable: int,
    timeout: float,
    what: str,
    interval: float = 0.01,
    state: Callable[[], object] | None = None,
) -> int:
    """Wait until ``count()`` is at least ``at_least``; return the count then.

    Args:
        count: a measure of progress that never decreases.
        at_least: the target.
        reachable: a value that ``count()`` surely reaches with no further action of the
            test, computed from the workload (not guessed); a target above it is refused
            at once, since waiting for it could only time out.
        timeout: seconds before giving up.
        what: what is counted, for the messages ("history events in the store").
        interval: seconds between polls.
        state: as for :func:`wait_until`.

    Raises:
        ValueError: ``at_least`` is above ``reachable``: the target is a bug of the test.
        AssertionError: ``timeout`` seconds passed first (the message gives the target, the
            last count, and ``state()``).
    """
    if at_least > reachable:
        raise ValueError(
            f"cannot wait for {at_least} {what}: only {reachable} are sure to come; "
            "cap the target at what the workload can still produce"
        )
    seen = [count()]

    def reached() -> bool:
        seen[0] = count()
        return seen[0] >= at_least

    wait_until(
        reached,
        timeout,
        interval=interval,
        what=f"{at_least} {what} (of {reachable} sure to come; {seen[0]} when the wait began)",
        state=lambda: f"{seen[0]} {what}" + ("" if state is None else f"; {state()}"),
    )
    return seen[0]


def _source(predicate: Callable[..., object]) -> str:
    """The predicate's source line (what a lambda's repr does not say), else its repr."""
    try:
        return " ".join(inspect.getsource(predicate).split()).rstrip(",")
    except (OSError, TypeError):
        return repr(predicate)


def finish(client: wf.WorkflowClient, instance_id: str, timeout: float = 10.0) -> wf.WorkflowState:
    """Wait for the instance to finish; return its state."""
    state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=timeout)
    assert state is not None, f"instance {instance_id!r} does not exist"
    return state


def state_of(client: wf.WorkflowClient, instance_id: str) -> wf.WorkflowState:
    """The instance's state, with its payloads.

    Raises:
        AssertionError: the instance does not exist.
    """
    state = client.get_workflow_state(instance_id)
    assert state is not None, f"instance {instance_id!r} does not exist"
    return state


def waiting_reason(client: wf.WorkflowClient, instance_id: str, timeout: float = 8.0) -> str:
    """Wait for the instance (which may not exist yet) to say why it waits for a worker (a
    runtime's presence thread notes it within a heartbeat or two); return what it says."""

    def reason() -> str | None:
        state = client.get_workflow_state(instance_id)
        return None if state is None else state.waiting_reason

    found = wait_until(
        reason,
        timeout,
        interval=0.05,
        what=f"a waiting reason in the state of {instance_id!r}",
        state=lambda: client.get_workflow_state(instance_id),
    )
    assert found is not None  # (wait_until returns only something truthy)
    return found


def decoded(payload: str | None) -> Any:
    """The value of a state's JSON payload (``serialized_output`` and the like).

    Raises:
        AssertionError: the state has no such payload (None).
    """
    assert payload is not None, "the state has no such payload (None)"
    return json.loads(payload)


def status_of(client: wf.WorkflowClient, instance_id: str) -> wf.WorkflowStatus | None:
    """The instance's status, or None if it does not exist."""
    state = client.get_workflow_state(instance_id, fetch_payloads=False)
    return None if state is None else state.runtime_status


def kinds(client: wf.WorkflowClient, instance_id: str) -> list[str]:
    """The kinds of the instance's history events, in order."""
    return [e.KIND for e in client.get_workflow_history(instance_id)]


def events_of(client: wf.WorkflowClient, instance_id: str, kind: str) -> list[Any]:
    """The instance's history events of one kind, in order."""
    return [e for e in client.get_workflow_history(instance_id) if kind == e.KIND]


class Gate:
    """Holds an activity until the test opens it: ``entered`` says it is running.

    Waits are bounded so that a failing test never hangs the runtime's shutdown.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self, timeout: float = 10.0) -> None:
        """Called by the activity: signal entry, then wait to be let through."""
        self.entered.set()
        self.opened.wait(timeout)

    def wait_entered(self, timeout: float = 10.0) -> None:
        """Called by the test: wait until the activity is inside the gate."""
        assert self.entered.wait(timeout), "the gated activity never started"

    def open(self) -> None:
        """Let the activity through."""
        self.opened.set()
