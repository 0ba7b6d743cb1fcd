"""Payloads decode as the Dapr SDK decodes them: dataclasses, namedtuples and
SimpleNamespaces arrive with attribute access; an input annotated with a model or a
dataclass is rebuilt as that type; the JSON is what the SDK's own encoder writes."""

from __future__ import annotations

import collections
import dataclasses
import json
import subprocess
import textwrap
from types import SimpleNamespace
from typing import Any

import pydantic
from sdk_env import sdk_python

import treadle as wf
from treadle.core import codec

from .helpers import finish


@dataclasses.dataclass
class Order:
    item: str
    cost: int


class Invoice(pydantic.BaseModel):
    item: str
    total: int


Pair = collections.namedtuple("Pair", "left right")


def test_objects_keep_attribute_access_through_a_workflow(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    seen: list[Any] = []

    @runtime.activity
    def price(ctx: wf.WorkflowActivityContext, order: Any) -> Order:
        seen.append(order)
        return Order(order.item, order.cost * 2)

    @runtime.activity
    def bill(ctx: wf.WorkflowActivityContext, invoice: Invoice) -> Invoice:
        seen.append(invoice)
        return Invoice(item=invoice.item, total=invoice.total + 1)

    @runtime.workflow
    def shop(ctx: wf.WorkflowContext, order: Order):  # type: ignore[no-untyped-def]
        seen.append(order)
        priced = yield ctx.call_activity(price, input=order)
        billed = yield ctx.call_activity(bill, input={"item": priced.item, "total": priced.cost})
        # a model is sent as a plain object (as the SDK sends it): a dict here
        pair = yield ctx.call_activity(swap, input=Pair(billed["item"], billed["total"]))
        return {"cost": priced.cost, "total": billed["total"], "pair": [pair.left, pair.right]}

    @runtime.activity
    def swap(ctx: wf.WorkflowActivityContext, pair: Any) -> Pair:
        return Pair(pair.right, pair.left)

    iid = client.schedule_new_workflow(shop, input=Order("tea", 3))
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output or "") == {
        "cost": 6,
        "total": 7,
        "pair": [7, "tea"],
    }
    workflow_input, activity_input, invoice = seen[0], seen[1], seen[-1]
    assert workflow_input == Order("tea", 3)  # rebuilt from the annotation
    assert isinstance(activity_input, SimpleNamespace) and activity_input.cost == 3
    assert isinstance(invoice, Invoice) and invoice.total == 6


def test_an_input_that_does_not_fit_its_annotation_fails_clearly(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def typed(ctx: wf.WorkflowContext, order: Order) -> int:
        return order.cost

    iid = client.schedule_new_workflow(typed, input={"item": "x", "price": 1})
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert "does not fit Order: unknown field(s) price" in state.failure_details.message


SDK_ENCODE = textwrap.dedent(
    """
    import collections, dataclasses, json, sys
    from types import SimpleNamespace
    from dapr.ext.workflow._durabletask.internal import shared

    @dataclasses.dataclass
    class Order:
        item: str
        cost: int

    Pair = collections.namedtuple("Pair", "left right")
    values = [Order("tea", 3), Pair(1, [2]), SimpleNamespace(a=1), {"orders": [Order("a", 1)]}]
    print(json.dumps([shared.to_json(v) for v in values]))
    decoded = shared.from_json(sys.stdin.read())
    print(json.dumps([[type(v).__name__, vars(v) if isinstance(v, SimpleNamespace) else v]
                      for v in decoded], default=vars))
    """
)


def test_the_same_json_as_the_sdk_writes_and_reads() -> None:
    python = sdk_python()
    ours = [
        codec.encode(Order("tea", 3)),
        codec.encode(Pair(1, [2])),
        codec.encode(SimpleNamespace(a=1)),
        codec.encode({"orders": [Order("a", 1)]}),
    ]
    proc = subprocess.run(
        [str(python), "-c", SDK_ENCODE],
        input="[" + ",".join(t or "null" for t in ours) + "]",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    sdk_texts_line, sdk_read_line = proc.stdout.splitlines()
    sdk_texts = json.loads(sdk_texts_line)
    # the same JSON values (whitespace aside) from the SDK's encoder and ours
    assert [json.loads(t) for t in sdk_texts] == [json.loads(t or "null") for t in ours]
    # and each side decodes the other's text alike
    assert [codec.decode(t) for t in sdk_texts] == [codec.decode(t) for t in ours]
    assert json.loads(sdk_read_line) == [
        ["SimpleNamespace", {"item": "tea", "cost": 3}],
        ["SimpleNamespace", {"left": 1, "right": [2]}],
        ["SimpleNamespace", {"a": 1}],
        ["dict", {"orders": [{"item": "a", "cost": 1}]}],
    ]
