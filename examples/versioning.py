"""Versioning: change a workflow while instances of it are running, as Dapr 1.18 does.

- **Named versions**: register the new code as a new version of the workflow, with
  ``is_latest=True``. New instances run the latest version; an instance keeps the version it
  started with, across restarts.
- **Patches**: ``if ctx.is_patched("name"):`` around a change inside one version. True for an
  instance that reaches that point for the first time (and recorded, so it stays true); false
  for one whose history went past it before the patch existed.
- An instance whose version no running worker has is **STALLED**, with the reason in its
  state, and goes on by itself once a runtime that has the code starts.

Each "release" below is a new runtime on the same store, as a new deployment of an
application would be.

Run: ``python examples/versioning.py``.
"""

import os
import tempfile
import time
from collections.abc import Callable

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'versioning.db')}"
)


def reserve(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"{item} reserved"


def gift_wrap(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"{item} gift-wrapped"


def order_v1(ctx: wf.DaprWorkflowContext, item: str):
    yield ctx.call_activity(reserve, input=item)
    ctx.set_custom_status("waiting for payment")
    yield ctx.wait_for_external_event("paid")
    return f"{item} shipped by v1"


def order_v2(ctx: wf.DaprWorkflowContext, item: str):
    yield ctx.call_activity(reserve, input=item)
    ctx.set_custom_status("waiting for payment")
    yield ctx.wait_for_external_event("paid")
    return f"{item} shipped by v2"


def order_v2_patched(ctx: wf.DaprWorkflowContext, item: str):
    yield ctx.call_activity(reserve, input=item)
    wrapped = ctx.is_patched("gift-wrap")
    if wrapped:
        yield ctx.call_activity(gift_wrap, input=item)
    ctx.set_custom_status("waiting for payment")
    yield ctx.wait_for_external_event("paid")
    return f"{item} shipped by v2" + (", gift-wrapped" if wrapped else "")


def release(*versions: tuple[str, Callable, bool]) -> wf.WorkflowRuntime:
    """A runtime with the given versions of the "order" workflow: (name, code, is_latest)."""
    runtime = wf.WorkflowRuntime(STORE)
    runtime.register_activity(reserve)
    runtime.register_activity(gift_wrap)
    for version_name, code, is_latest in versions:
        runtime.register_versioned_workflow(
            code, name="order", version_name=version_name, is_latest=is_latest
        )
    return runtime


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.02)


def main() -> None:
    with wf.DaprWorkflowClient(STORE) as client:

        def waiting_for_payment(instance_id: str) -> None:
            def check() -> bool:
                state = client.get_workflow_state(instance_id)
                return state is not None and state.serialized_custom_status is not None

            wait_until(check, f"{instance_id} to wait for its payment")

        def pay(instance_id: str, label: str) -> None:
            client.raise_workflow_event(instance_id, "paid")
            state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
            print(f"{label}, {state.runtime_status.name}: {state.serialized_output}")

        with release(("v1", order_v1, True)):
            lamp = client.schedule_new_workflow("order", input="lamp")
            chair = client.schedule_new_workflow("order", input="chair")
            waiting_for_payment(lamp)
            waiting_for_payment(chair)

        with release(("v1", order_v1, False), ("v2", order_v2, True)):
            pay(lamp, "lamp: started on v1 before the upgrade")
            book = client.schedule_new_workflow("order", input="book")
            waiting_for_payment(book)

        with release(("v2", order_v2_patched, True)):  # v1 removed
            pay(book, "book: on v2, past the gift-wrap point before the patch")
            vase = client.schedule_new_workflow("order", input="vase")
            waiting_for_payment(vase)
            pay(vase, "vase: started after the patch")

            client.raise_workflow_event(chair, "paid")

            def stalled() -> bool:
                state = client.get_workflow_state(chair)
                return state is not None and state.runtime_status is wf.WorkflowStatus.STALLED

            wait_until(stalled, "chair to stall")
            state = client.get_workflow_state(chair)
            assert state is not None and state.failure_details is not None
            reason = state.failure_details.message
            print(f"chair: on v1, which this release removed: STALLED ({reason})")

        with release(("v1", order_v1, False), ("v2", order_v2_patched, True)):
            state = client.wait_for_workflow_completion(chair, timeout_in_seconds=30)
            print(f"chair: once v1 is back, {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
