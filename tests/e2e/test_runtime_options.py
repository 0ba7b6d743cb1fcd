"""Runtime options: workers with different registrations on one store; store ownership."""

from __future__ import annotations

from collections.abc import Callable

import treadle as wf

from .helpers import finish, status_of, waiting_reason


def only_here(ctx: wf.WorkflowContext, x: int) -> int:
    return x + 1


def test_unknown_workflow_is_left_to_a_worker_that_has_it(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    bystander = make_runtime()  # (fail_unknown_workflows, True by default, changes nothing)
    iid = client.schedule_new_workflow("only_here", input=1)
    assert "'only_here'" in waiting_reason(client, iid)  # the bystander swept it, unclaimed
    assert status_of(client, iid) is wf.WorkflowStatus.PENDING
    assert bystander.workflow_names == []
    owner = make_runtime(start=False)
    owner.register_workflow(only_here)
    owner.start()
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.serialized_output == "2"


def test_runtime_reopens_a_store_it_opened_from_a_url(store_url: str) -> None:
    runtime = wf.WorkflowRuntime(store_url)
    runtime.register_workflow(only_here)
    for _ in range(2):  # start, shut down (closing the store), and start again
        with runtime, wf.WorkflowClient(store_url) as client:
            iid = client.schedule_new_workflow(only_here, input=41)
            assert finish(client, iid).serialized_output == "42"


def test_a_named_memory_store_serves_a_runtime_and_a_client() -> None:
    """Two stores opened on one named in-memory database (a runtime's and a client's): the
    client reads while the runtime writes, without "database table is locked" errors."""
    runtime = wf.WorkflowRuntime("memory://runtime-and-client", local_starts=False)
    runtime.register_workflow(only_here)
    with runtime, wf.WorkflowClient("memory://runtime-and-client") as client:
        ids = [client.schedule_new_workflow(only_here, input=n) for n in range(20)]
        assert [finish(client, iid).serialized_output for iid in ids] == [
            str(n + 1) for n in range(20)
        ]
