"""``read_ahead``: a runtime's start reads how its functions take their input, so that a fresh
worker's first workflow does not; what cannot be read yet is left to the first call."""

from __future__ import annotations

import dataclasses
from typing import Any

from treadle.core import inputs


@dataclasses.dataclass
class Order:
    item: str


def takes_order(ctx: Any, order: Order) -> str:
    return order.item


def takes_later(ctx: Any, value: Later) -> Any:  # type: ignore[name-defined]  # noqa: F821
    return value


def test_read_ahead_leaves_the_spec_cached_for_the_first_call() -> None:
    inputs._cached_spec.cache_clear()
    inputs.read_ahead(takes_order)
    info = inputs._cached_spec.cache_info()
    assert info.currsize == 1 and info.misses == 1
    assert inputs.call_with_input(takes_order, None, '{"item": "lamp"}') == "lamp"
    assert inputs._cached_spec.cache_info().misses == 1  # (the call read nothing again)


def test_what_names_a_type_not_defined_yet_is_read_at_the_first_call() -> None:
    inputs._cached_spec.cache_clear()
    inputs.read_ahead(takes_later)  # (Later is not defined yet: nothing is cached)
    assert inputs._cached_spec.cache_info().currsize == 0

    @dataclasses.dataclass
    class Defined:
        n: int

    globals()["Later"] = Defined  # (now it is)
    try:
        out = inputs.call_with_input(takes_later, None, '{"n": 3}')
    finally:
        del globals()["Later"]
    assert out == Defined(3)  # (rebuilt as the annotated type, as without read_ahead)


def test_read_ahead_takes_anything_without_raising() -> None:
    for thing in (None, 3, object(), [1], lambda: None):
        inputs.read_ahead(thing)
