"""Typed payloads and the asyncio client.

Dataclasses travel as the Dapr SDK sends them and arrive with attribute access; an input
parameter annotated with a dataclass or a pydantic model is rebuilt as that type. The
workflow is started and awaited from asyncio code with ``treadle.aio.DaprWorkflowClient``,
which has every method of the blocking client as a coroutine.

Run: ``python examples/typed_payloads_async_client.py``.
"""

import asyncio
import os
import tempfile
from dataclasses import dataclass

import treadle as wf
from treadle.aio import DaprWorkflowClient

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'typed.db')}"
)


@dataclass
class Order:
    item: str
    quantity: int
    unit_cents: int


@dataclass
class Quote:
    item: str
    total_cents: int


def quote_order(ctx: wf.WorkflowActivityContext, order: Order) -> Quote:
    # ``order`` is rebuilt as an Order from the annotation
    return Quote(item=order.item, total_cents=order.quantity * order.unit_cents)


def order_workflow(ctx: wf.DaprWorkflowContext, order: Order):
    quote = yield ctx.call_activity(quote_order, input=order)
    # an undeclared dataclass arrives with attribute access, as the SDK gives it
    return f"{order.quantity} x {quote.item}: {quote.total_cents / 100:.2f} EUR"


async def main() -> None:
    runtime = wf.WorkflowRuntime(STORE)
    runtime.register_workflow(order_workflow)
    runtime.register_activity(quote_order)
    with runtime:
        async with DaprWorkflowClient(STORE) as client:
            iid = await client.schedule_new_workflow(order_workflow, input=Order("lamp", 3, 1250))
            state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            assert state is not None
            print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    asyncio.run(main())
