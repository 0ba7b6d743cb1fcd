"""Helpers for the end-to-end tests: waiting on conditions, gates for activities, histories."""

from __future__ import annotations

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
    predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises:
        AssertionError: ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


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
