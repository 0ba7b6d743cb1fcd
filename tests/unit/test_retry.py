"""RetryPolicy: backoff arithmetic and validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from treadle.core.retry import RetryPolicy
from treadle.errors import InvalidInputError

from .helpers import T0, at


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def delays(policy: RetryPolicy, now_offset: float = 0) -> list[float | None]:
    """The wait after each failed attempt, until the policy gives up."""
    out: list[float | None] = []
    for attempts in range(1, 12):
        delay = policy.next_delay(attempts, T0, at(now_offset))
        out.append(None if delay is None else delay.total_seconds())
        if delay is None:
            break
    return out


def test_constant_interval_by_default() -> None:
    policy = RetryPolicy(first_retry_interval=seconds(3), max_number_of_attempts=4)
    assert delays(policy) == [3, 3, 3, None]


def test_backoff_coefficient_multiplies_each_wait() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(1), max_number_of_attempts=5, backoff_coefficient=2
    )
    assert delays(policy) == [1, 2, 4, 8, None]


def test_fractional_coefficient() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(2), max_number_of_attempts=4, backoff_coefficient=1.5
    )
    assert delays(policy) == [2, 3, 4.5, None]


def test_none_coefficient_means_one() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(2), max_number_of_attempts=3, backoff_coefficient=None
    )
    assert delays(policy) == [2, 2, None]


def test_max_retry_interval_caps_each_wait() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(1),
        max_number_of_attempts=6,
        backoff_coefficient=3,
        max_retry_interval=seconds(5),
    )
    assert delays(policy) == [1, 3, 5, 5, 5, None]


def test_one_attempt_never_retries() -> None:
    policy = RetryPolicy(first_retry_interval=seconds(1), max_number_of_attempts=1)
    assert policy.next_delay(1, T0, T0) is None


def test_retry_timeout_counts_from_the_first_attempt() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(10), max_number_of_attempts=100, retry_timeout=seconds(60)
    )
    assert policy.next_delay(1, T0, at(49)) == seconds(10)
    assert policy.next_delay(3, T0, at(50)) == seconds(10)  # ends exactly at the deadline
    assert policy.next_delay(3, T0, at(50.5)) is None
    assert policy.next_delay(1, at(100), at(149)) == seconds(10)


def test_retry_timeout_applies_to_the_capped_delay() -> None:
    policy = RetryPolicy(
        first_retry_interval=seconds(10),
        max_number_of_attempts=10,
        backoff_coefficient=10,
        max_retry_interval=seconds(20),
        retry_timeout=seconds(30),
    )
    assert policy.next_delay(3, T0, at(10)) == seconds(20)
    assert policy.next_delay(3, T0, at(11)) is None


def test_zero_interval_is_allowed() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(0), max_number_of_attempts=2)
    assert policy.next_delay(1, T0, T0) == timedelta(0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"first_retry_interval": 5}, "first_retry_interval"),
        ({"first_retry_interval": seconds(-1)}, "first_retry_interval"),
        ({"max_number_of_attempts": 0}, "max_number_of_attempts"),
        ({"max_number_of_attempts": 2.5}, "max_number_of_attempts"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"max_retry_interval": seconds(-1)}, "max_retry_interval"),
        ({"retry_timeout": seconds(-1)}, "retry_timeout"),
    ],
)
def test_invalid_options_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    options = {"first_retry_interval": seconds(1), "max_number_of_attempts": 3, **kwargs}
    with pytest.raises(InvalidInputError, match=f"RetryPolicy.{field}"):
        RetryPolicy(**options)


def test_policy_is_frozen() -> None:
    policy = RetryPolicy(first_retry_interval=seconds(1), max_number_of_attempts=3)
    with pytest.raises(AttributeError):
        policy.max_number_of_attempts = 5  # type: ignore[misc]
