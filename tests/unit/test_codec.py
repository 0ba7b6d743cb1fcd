"""Payload encoding: JSON only, None stays None, falsy values survive, objects as the Dapr
SDK encodes them."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import math
import re
from types import SimpleNamespace

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.core import codec
from treadle.errors import InvalidInputError


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int = 1


class Order(pydantic.BaseModel):
    order_id: str
    items: list[str]
    placed: dt.date


Point = collections.namedtuple("Point", "x y")


def test_dataclass_is_encoded_as_a_marked_object_and_decodes_with_attributes() -> None:
    encoded = codec.encode(Item("A-1", 0))
    assert encoded is not None
    assert codec.loads(encoded) == {"sku": "A-1", "quantity": 0, codec.AUTO_OBJECT: True}
    decoded = codec.decode(encoded)
    assert isinstance(decoded, SimpleNamespace)
    assert (decoded.sku, decoded.quantity) == ("A-1", 0)


def test_nested_dataclasses() -> None:
    encoded = codec.encode({"items": [Item("a"), Item("b", 2)]})
    decoded = codec.decode(encoded)
    assert [(i.sku, i.quantity) for i in decoded["items"]] == [("a", 1), ("b", 2)]


def test_namedtuple_at_the_top_is_an_object_nested_ones_are_lists() -> None:
    top = codec.decode(codec.encode(Point(1, 2)))
    assert isinstance(top, SimpleNamespace) and (top.x, top.y) == (1, 2)
    assert codec.decode(codec.encode({"p": Point(1, 2)})) == {"p": [1, 2]}


def test_simple_namespace_round_trips() -> None:
    value = SimpleNamespace(a=1, inner=SimpleNamespace(b=[1, 2]))
    assert codec.decode(codec.encode(value)) == value


def test_plain_dicts_stay_dicts() -> None:
    assert codec.decode('{"__durabletask_autoobject__": false, "a": 1}') == {"a": 1}
    assert codec.decode('{"a": {"b": 1}}') == {"a": {"b": 1}}


def test_pydantic_model_is_encoded_as_an_object() -> None:
    order = Order(order_id="o-1", items=["a"], placed=dt.date(2024, 1, 2))
    assert codec.decode(codec.encode(order)) == {
        "order_id": "o-1",
        "items": ["a"],
        "placed": "2024-01-02",
    }
    assert Order.model_validate(codec.decode(codec.encode(order))) == order


def test_none_is_no_payload() -> None:
    assert codec.encode(None) is None
    assert codec.decode(None) is None
    assert codec.decode("") is None
    assert codec.decode(b"") is None


@pytest.mark.parametrize("value", [0, 0.0, "", {}, [], False])
def test_falsy_values_round_trip_as_themselves(value: object) -> None:
    encoded = codec.encode(value)
    assert encoded is not None and encoded != ""
    back = codec.decode(encoded)
    assert back == value and type(back) is type(value)


def test_tuples_and_sets_become_lists() -> None:
    assert codec.decode(codec.encode((1, 2))) == [1, 2]
    assert codec.decode(codec.encode({3})) == [3]
    assert codec.decode(codec.encode(frozenset())) == []


def test_object_with_to_dict() -> None:
    class Money:
        def to_dict(self) -> dict[str, int]:
            return {"cents": 5}

    assert codec.decode(codec.encode(Money())) == {"cents": 5}


def test_bytes_input_decodes() -> None:
    assert codec.decode(b'{"a":1}') == {"a": 1}


@pytest.mark.parametrize("text", ["{not json", "[1,", "'single'", "nan", "1 2"])
def test_bad_json_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        codec.decode(text)


@pytest.mark.parametrize("value", [object(), {"key": object()}, 2**70, [lambda: 1]])
def test_unserializable_is_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInputError, match="not JSON-serializable"):
        codec.encode(value)


def test_dumps_and_loads_for_internal_structures() -> None:
    data = {"kind": "TaskScheduled", "event_id": 3}
    assert codec.loads(codec.dumps(data)) == data
    assert isinstance(codec.dumps(data), str)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=40)
@given(_JSON)
def test_json_values_round_trip(value: object) -> None:
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (float("nan"), "nan at the top"),
        ({"a": [1, float("inf")]}, "inf at ['a'][1]"),
        ((1, float("-inf")), "-inf at [1]"),
        (SimpleNamespace(x=float("nan")), "nan at ['x']"),
        ([{"k": None, "v": float("nan")}], "nan at [0]['v']"),
    ],
)
def test_nan_and_infinity_are_refused_not_turned_into_null(value: object, where: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(where)):
        codec.encode(value)


def test_nulls_and_finite_floats_still_encode() -> None:
    assert codec.encode({"a": None, "b": 1.5, "c": "null"}) == '{"a":null,"b":1.5,"c":"null"}'


def test_nan_and_infinity_from_python_json_decode() -> None:
    # Python's json (the Dapr Python SDK's encoder) writes NaN and Infinity as bare words
    value = codec.decode(json.dumps([float("nan"), float("inf"), -float("inf"), "NaN"]))
    assert math.isnan(value[0]) and value[1:] == [float("inf"), -float("inf"), "NaN"]
