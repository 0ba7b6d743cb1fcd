"""record_class: the same classes as ``@dataclass(frozen=True, slots=True)`` (or mutable),
each made with one generated method."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import sys
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from treadle.core.history import EVENT_TYPES, TaskScheduled
from treadle.core.records import is_record, record_class

from .helpers import T0


def _twins(*, frozen: bool = True, kw_only: bool = False, eq: bool = True) -> tuple[Any, Any]:
    """Two classes from one declaration: the dataclass and the record class."""
    made = []
    for use_record in (False, True):
        if use_record:
            base_make: Any = record_class(frozen=frozen)
            make: Any = record_class(frozen=frozen, kw_only=kw_only, eq=eq)
        else:
            base_make = dataclass(frozen=frozen, slots=True)
            make = dataclass(frozen=frozen, slots=True, kw_only=kw_only, eq=eq)

        @base_make
        class Base:
            """A base with a default."""

            a: int
            b: str = "b"

        @make
        class Sample(Base):
            c: list[int] = field(default_factory=list, hash=False)
            d: float = field(default=1.5, kw_only=True)
            e: str = field(kw_only=True)
            f: int = field(default=7, compare=False, repr=False)
            g: int = field(default=0, init=False)
            h: dict[str, int] = field(default_factory=dict, init=False, hash=False)

        # (at module level under a name of its own, as pickle finds classes)
        name = f"_Sample_{'record' if use_record else 'plain'}_{frozen}_{kw_only}_{eq}"
        Sample.__qualname__ = Sample.__name__ = name
        globals()[name] = Sample
        made.append(Sample)
    return made[0], made[1]


def _outcome(cls: type, *args: Any, **kwargs: Any) -> Any:
    try:
        obj = cls(*args, **kwargs)
    except TypeError as exc:
        return ("TypeError", str(exc).split("(", 1)[-1])
    return (dataclasses.asdict(obj), repr(obj).split("(", 1)[1])


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1,), {"e": "x"}),
        ((1, "z", [3]), {"e": "x", "d": 2.0, "f": 9}),
        ((), {"a": 1, "e": "x"}),
        ((1,), {}),  # missing keyword-only e
        ((), {"e": "x"}),  # missing a
        ((1, "z", [3], 4.0), {"e": "x"}),  # d is keyword-only
        ((1,), {"e": "x", "f2": 0}),  # unknown
        ((1,), {"e": "x", "a": 2}),  # a twice
        ((1,), {"e": "x", "g": 2}),  # g is not an argument
    ],
)
@pytest.mark.parametrize("frozen", [True, False])
def test_the_same_instances_repr_and_errors_as_the_dataclass(
    args: tuple[Any, ...], kwargs: dict[str, Any], frozen: bool
) -> None:
    plain, made = _twins(frozen=frozen)
    assert _outcome(made, *args, **kwargs) == _outcome(plain, *args, **kwargs)
    assert str(inspect.signature(made)) == str(inspect.signature(plain))
    assert made.__match_args__ == plain.__match_args__
    assert made.__doc__ == plain.__doc__  # (none declared: the name and signature)
    assert made.__slots__ == plain.__slots__
    assert [f.name for f in dataclasses.fields(made)] == [f.name for f in dataclasses.fields(plain)]


def test_equality_and_hash_follow_the_compared_fields() -> None:
    plain, made = _twins()
    for cls in (plain, made):
        one, two = cls(1, e="x", f=1), cls(1, e="x", f=2)  # f is not compared
        assert one == two and one is not two and hash(one) == hash(two)
        assert one != cls(2, e="x") and one != dataclasses.replace(one, b="q")
        assert (one == object()) is False and one.__eq__(object()) is NotImplemented
        assert one.c == [] and one.c is not two.c  # (a new list from the factory each time)
    assert hash(made(1, e="x")) == hash(plain(1, e="x"))  # (the same tuple is hashed)
    nan = float("nan")
    assert made(1, e="x", d=nan) == made(1, e="x", d=nan)  # (tuples compare items by identity)
    assert plain(1, e="x", d=nan) == plain(1, e="x", d=nan)
    # a record never equals a dataclass of the same fields, nor a subclass instance
    assert made(1, e="x") != plain(1, e="x")


def test_frozen_stays_frozen_and_pickles_and_copies() -> None:
    plain, made = _twins()
    for cls in (plain, made):
        one = cls(1, e="x")
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
            one.a = 2
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'b'"):
            del one.b
        assert dataclasses.replace(one, b="q").b == "q"
        with pytest.raises(ValueError, match="init=False"):
            dataclasses.replace(one, g=1)
        for other in (
            copy.copy(one),
            copy.deepcopy(one),
            pickle.loads(pickle.dumps(one, protocol=2)),
            pickle.loads(pickle.dumps(one)),
        ):
            assert other == one and other.f == one.f and other.g == one.g
    event = TaskScheduled(event_id=3, timestamp=T0, name="step", input="1")
    assert pickle.loads(pickle.dumps(event)) == event
    assert hash(event) == hash(dataclasses.replace(event))


def test_mutable_records_assign_and_are_unhashable() -> None:
    plain, made = _twins(frozen=False)
    for cls in (plain, made):
        one = cls(1, e="x")
        one.a = 5
        assert one.a == 5 and one == cls(5, e="x")
        assert cls.__hash__ is None
        assert pickle.loads(pickle.dumps(one)) == one
    # eq=False: the base's __eq__ (its own fields) and hash, as with dataclasses
    plain, made = _twins(frozen=False, eq=False)
    assert "__eq__" not in vars(made) and "__hash__" not in vars(made)
    for cls in (plain, made):
        one = cls(1, e="x")
        assert one == cls(1, e="y") and one != cls(2, e="x")
        assert type(one).__hash__ is None


def test_post_init_runs_and_recursive_repr_is_cut() -> None:
    seen = []

    @record_class(frozen=False)
    class Node:
        name: str
        children: list[Any] = field(default_factory=list)

        def __post_init__(self) -> None:
            seen.append(self.name)

    node = Node("n")
    node.children.append(node)
    assert seen == ["n"]
    assert repr(node).endswith(".Node(name='n', children=[...])")


def test_methods_the_class_defines_are_kept_as_dataclasses_keeps_them() -> None:
    made: list[Any] = []
    makers: list[Any] = [dataclass(frozen=True, slots=True), record_class]
    for make in makers:

        @make
        class Own:
            a: int

            def __repr__(self) -> str:
                return "own"

            def __eq__(self, other: object) -> bool:
                return True

            def __hash__(self) -> int:
                return 7

        made.append(Own)
    for cls in made:
        one = cls(1)
        assert repr(one) == "own" and one == cls(2) and hash(one) == 7
        with pytest.raises(dataclasses.FrozenInstanceError):
            one.a = 2

    with pytest.raises(TypeError, match="cannot define __setattr__"):

        @record_class
        class Guarded:
            a: int

            def __setattr__(self, name: str, value: Any) -> None:
                pass


def test_what_it_cannot_make_alike_is_refused() -> None:
    with pytest.raises(TypeError, match="InitVar"):

        @record_class
        class WithInitVar:
            a: int
            scale: InitVar[int] = 1

    @record_class
    class Frozen:
        a: int

    with pytest.raises(TypeError, match="mutable but its base Frozen is not"):

        @record_class(frozen=False)
        class Thawed(Frozen):  # type: ignore[misc]
            b: int = 0

    @dataclass(slots=True)
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="frozen but its base Mutable is not"):

        @record_class
        class Refrozen(Mutable):  # type: ignore[misc]
            b: int = 0


def test_the_package_makes_its_slotted_dataclasses_as_records() -> None:
    # every slotted dataclass the package defines is a record class (treadle.errors sits below
    # treadle.core and keeps its one dataclass), and each event is one
    assert all(is_record(cls) for cls in EVENT_TYPES.values())
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("treadle.") or name == "treadle.errors":
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == name
                and dataclasses.is_dataclass(value)
                and "__slots__" in value.__dict__
            ):
                found.append(value)
                assert is_record(value), value
    assert len(found) > 60
