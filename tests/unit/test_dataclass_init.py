"""faster_init: the same __init__ as dataclasses makes, for frozen slotted dataclasses."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

import treadle.runtime  # noqa: F401  (imports every module that applies faster_init)
from treadle.core.dataclass_init import REPLACED, faster_init
from treadle.core.history import TaskScheduled

from .helpers import T0


@dataclass(frozen=True, slots=True)
class _Base:
    a: int
    b: str = "b"


def _twins() -> tuple[type, type]:
    """Two identical classes, the second given faster_init."""
    made = []
    for _ in range(2):

        @dataclass(frozen=True, slots=True)
        class Sample(_Base):
            c: list[int] = field(default_factory=list)
            d: float = field(default=1.5, kw_only=True)
            e: str = field(kw_only=True)

        made.append(Sample)
    return made[0], faster_init(made[1])


def _outcome(cls: type, *args: Any, **kwargs: Any) -> Any:
    try:
        return dataclasses.asdict(cls(*args, **kwargs))
    except TypeError as exc:
        return ("TypeError", str(exc).split("(", 1)[-1])


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1,), {"e": "x"}),
        ((1, "z", [3]), {"e": "x", "d": 2.0}),
        ((), {"a": 1, "e": "x"}),
        ((1,), {}),  # missing keyword-only e
        ((), {"e": "x"}),  # missing a
        ((1, "z", [3], 4.0), {"e": "x"}),  # d is keyword-only
        ((1,), {"e": "x", "f": 0}),  # unknown
        ((1,), {"e": "x", "a": 2}),  # a twice
    ],
)
def test_the_same_instances_and_errors_as_the_dataclass_init(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = _twins()
    assert _outcome(fast, *args, **kwargs) == _outcome(plain, *args, **kwargs)


def test_instances_stay_frozen_hashable_and_picklable() -> None:
    plain, fast = _twins()
    one, two = fast(1, e="x"), fast(1, e="x")
    assert one == two and one is not two
    assert one.c == [] and one.c is not two.c  # (a new list from the factory each time)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 2
    assert dataclasses.replace(one, b="q").b == "q"
    event = TaskScheduled(event_id=3, timestamp=T0, name="step", input="1")
    assert TaskScheduled in REPLACED
    assert pickle.loads(pickle.dumps(event)) == event
    assert hash(event) == hash(dataclasses.replace(event))
    assert str(inspect.signature(fast)) == str(inspect.signature(plain))


def test_classes_it_cannot_do_alike_are_refused() -> None:
    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        scale: InitVar[int] = 1

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int
        b: int = field(default=0, init=False)

    for cls in (NotFrozen, NoSlots, PostInit, WithInitVar, NotInInit):
        with pytest.raises(TypeError):
            faster_init(cls)


def test_every_class_given_it_keeps_the_dataclass_signature() -> None:
    # the events, actions, store records and activity context (imported above)
    names = {cls.__name__ for cls in REPLACED}
    assert {"TaskScheduled", "ScheduleTask", "TurnCommit", "ActivityWorkItem"} <= names
    for cls, dataclass_init in REPLACED.items():
        made = inspect.signature(vars(cls)["__init__"]).parameters
        original = inspect.signature(dataclass_init).parameters
        assert list(made) == list(original), cls
        for name, param in made.items():
            before = original[name]
            assert param.kind == before.kind, (cls, name)
            if before.default is inspect.Parameter.empty or repr(before.default) == "<factory>":
                assert repr(param.default) == repr(before.default), (cls, name)
            else:
                assert param.default is before.default, (cls, name)
