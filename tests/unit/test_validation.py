"""The input rules of :mod:`treadle.core.validation`, which every edge and the workflow
context share."""

from __future__ import annotations

import pytest

from treadle.core.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    SendEvent,
)
from treadle.core.history import EPOCH, EventRaised, OrchestrationStatus
from treadle.core.validation import (
    MAX_INSTANCE_ID_LENGTH,
    check_action,
    check_text,
    default_child_id,
    validate_token,
)
from treadle.errors import InvalidInputError


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (CreateSubOrchestration(id=3, name="w", instance_id=""), "child workflow instance id"),
        (CreateSubOrchestration(id=3, name="w", instance_id="a\x00b"), "control characters"),
        (CreateSubOrchestration(id=3, name="w", instance_id="x" * 5000), "5000 characters"),
        (CreateSubOrchestration(id=3, name="", instance_id="c"), "child workflow name"),
        (CreateSubOrchestration(id=3, name="w", instance_id="c", app_id="a\x00"), "app id"),
        (ScheduleTask(id=3, name="a\x00"), "activity name"),
        (ScheduleTask(id=3, name="a", input="{"), "input is not valid JSON"),
        (SendEvent(id=3, instance_id="", name="e"), "target instance id"),
        (SendEvent(id=3, instance_id="t", name="e\n"), "event name"),
        (
            CompleteOrchestration(
                id=3,
                status=OrchestrationStatus.CONTINUED_AS_NEW,
                carryover_events=(EventRaised(timestamp=EPOCH, name=""),),
            ),
            "carried-over event name",
        ),
    ],
)
def test_check_action_names_the_action_and_the_rule(action: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        check_action(action)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"action 3 ({type(action).__name__}): ")


def test_valid_actions_pass() -> None:
    for action in (
        CreateSubOrchestration(id=1, name="w", instance_id="p:0001", input='"\\u0000"'),
        ScheduleTask(id=2, name="a", app_id=None),
        SendEvent(id=3, instance_id="t", name="e"),
        CreateTimer(id=4, fire_at=EPOCH),
        CompleteOrchestration(id=5, status=OrchestrationStatus.COMPLETED, result="1"),
    ):
        assert check_action(action) is action


def test_default_child_ids_stay_within_the_limit_and_apart() -> None:
    assert default_child_id("parent", 10) == "parent:000a"
    long_a, long_b = "a" * 256, "a" * 255 + "b"
    one, other = default_child_id(long_a, 1), default_child_id(long_b, 1)
    assert len(one) <= MAX_INSTANCE_ID_LENGTH and len(other) <= MAX_INSTANCE_ID_LENGTH
    assert one != other and one == default_child_id(long_a, 1)


def test_tokens_and_free_text() -> None:
    assert validate_token("123|id") == "123|id"
    for bad in ("", "a\x00b", "t" * 400, 5):
        with pytest.raises(InvalidInputError, match="page token"):
            validate_token(bad)
    assert check_text("any text, \u00e9", "custom status") == "any text, \u00e9"
    with pytest.raises(InvalidInputError, match="NUL"):
        check_text("a\x00", "custom status")
