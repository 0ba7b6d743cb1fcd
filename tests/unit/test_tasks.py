"""Tasks and their composites, without a workflow around them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from treadle.core.tasks import CompletableTask, Task, WhenAllTask, WhenAnyTask, when_all, when_any
from treadle.errors import FailureDetails, TaskFailedError

DETAILS = FailureDetails(message="boom", error_type="ValueError")


def test_get_result_before_completion_raises() -> None:
    task: CompletableTask[int] = CompletableTask()
    assert not task.is_complete
    with pytest.raises(ValueError, match="not completed"):
        task.get_result()


def test_complete_sets_the_result_once() -> None:
    task: CompletableTask[int] = CompletableTask()
    task.complete(0)
    task.complete(1)
    task.fail("late", DETAILS)
    assert task.is_complete and not task.is_failed
    assert task.get_result() == 0
    with pytest.raises(ValueError, match="did not fail"):
        task.get_exception()


def test_failed_task_raises_task_failed_error_with_details() -> None:
    task: CompletableTask[int] = CompletableTask()
    task.fail("ValueError: boom", DETAILS)
    task.complete(1)
    assert task.is_failed
    with pytest.raises(TaskFailedError, match="ValueError: boom") as info:
        task.get_result()
    assert info.value.details is DETAILS
    assert task.get_exception() is info.value


def test_fail_with_any_exception() -> None:
    task: CompletableTask[int] = CompletableTask()
    task.fail_with(TimeoutError("late"))
    with pytest.raises(TimeoutError):
        task.get_result()


def test_when_all_of_nothing_is_complete_with_an_empty_list() -> None:
    task = when_all([])
    assert isinstance(task, WhenAllTask)
    assert task.is_complete
    assert task.get_result() == []


def test_when_any_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        when_any([])


def test_when_all_collects_results_in_order() -> None:
    a, b, c = (CompletableTask[str]() for _ in range(3))
    task = when_all(iter([a, b, c]))  # any iterable
    c.complete("c")
    a.complete("a")
    assert not task.is_complete
    b.complete("b")
    assert task.get_result() == ["a", "b", "c"]
    assert task.children == [a, b, c]


def test_when_all_fails_at_the_first_failure() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    task = when_all([a, b])
    b.fail("ValueError: boom", DETAILS)
    assert task.is_failed
    assert task.get_exception() is b.get_exception()
    a.fail("KeyError: other", FailureDetails(message="other", error_type="KeyError"))
    assert task.get_exception() is b.get_exception()


def test_when_all_of_already_completed_tasks_is_complete() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    a.complete(1)
    b.complete(2)
    assert when_all([a, b]).get_result() == [1, 2]


def test_when_all_with_an_already_failed_task_fails() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    a.fail("ValueError: boom", DETAILS)
    assert when_all([a, b]).is_failed


def test_when_any_completes_with_the_winning_task() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    task = when_any([a, b])
    assert isinstance(task, WhenAnyTask)
    b.complete("b")
    a.complete("a")
    assert task.get_result() is b


def test_when_any_of_completed_tasks_picks_the_first_in_list_order() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    b.complete("b")
    a.complete("a")
    assert when_any([a, b]).get_result() is a


def test_when_any_with_a_failed_winner_completes_without_failing() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    task = when_any([a, b])
    a.fail("ValueError: boom", DETAILS)
    assert not task.is_failed
    assert task.get_result() is a


def test_composites_nest() -> None:
    a, b, c = (CompletableTask[str]() for _ in range(3))
    parts: list[Task[Any]] = [when_any([a, b]), c]
    task = when_all(parts)
    b.complete("b")
    c.complete("c")
    [winner, c_result] = task.get_result()
    assert winner is b and c_result == "c"


def test_one_task_in_two_composites() -> None:
    a, b = CompletableTask[Any](), CompletableTask[Any]()
    both, either = when_all([a, b]), when_any([a, b])
    a.complete(1)
    assert either.get_result() is a and not both.is_complete
    b.complete(2)
    assert both.get_result() == [1, 2]


@pytest.mark.parametrize("compose", [when_all, when_any])
def test_composites_reject_non_tasks(compose: Callable[[list[Any]], Task[Any]]) -> None:
    with pytest.raises(TypeError, match="got int"):
        compose([CompletableTask(), 3])
