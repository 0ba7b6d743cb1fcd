"""Retry policies for activities and child workflows, and their backoff arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta

from treadle.core.records import record_class
from treadle.errors import InvalidInputError

POISONED = "ActivityPoisoned"
"""The error type of an activity a runtime failed because its attempts kept killing their
worker (see :mod:`treadle.runtime.poison`): its attempts are spent, no retry policy runs it
again."""


@record_class(kw_only=True)
class RetryPolicy:
    """How to retry a failed activity or child workflow.

    Retries are durable: the wait between attempts is a timer in the workflow's history, so a
    retry survives a crash of the process.

    Attributes:
        first_retry_interval: the wait before the second attempt.
        max_number_of_attempts: attempts in all, the first included (1 means no retry).
        backoff_coefficient: each wait is the previous one times this (>= 1).
        max_retry_interval: the longest single wait, if any.
        retry_timeout: give up once this long has passed since the first attempt, if set.
    """

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float | None = 1.0
    max_retry_interval: timedelta | None = None
    retry_timeout: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.first_retry_interval, timedelta):
            raise InvalidInputError("RetryPolicy.first_retry_interval must be a timedelta")
        if self.first_retry_interval < timedelta(0):
            raise InvalidInputError("RetryPolicy.first_retry_interval must not be negative")
        if not isinstance(self.max_number_of_attempts, int) or self.max_number_of_attempts < 1:
            raise InvalidInputError("RetryPolicy.max_number_of_attempts must be an int >= 1")
        if self.backoff_coefficient is not None and self.backoff_coefficient < 1:
            raise InvalidInputError("RetryPolicy.backoff_coefficient must be >= 1")
        if self.max_retry_interval is not None and self.max_retry_interval < timedelta(0):
            raise InvalidInputError("RetryPolicy.max_retry_interval must not be negative")
        if self.retry_timeout is not None and self.retry_timeout < timedelta(0):
            raise InvalidInputError("RetryPolicy.retry_timeout must not be negative")

    @property
    def obj(self) -> RetryPolicy:
        """This policy (the Dapr SDK's ``obj`` is its engine's policy; treadle has only
        this one)."""
        return self

    def next_delay(
        self, attempts_made: int, first_attempt_at: datetime, now: datetime
    ) -> timedelta | None:
        """The wait before the next attempt, or None when the policy is exhausted.

        Args:
            attempts_made: how many attempts have failed so far (>= 1).
            first_attempt_at: when the first attempt was scheduled (workflow clock).
            now: the workflow clock at the failure.
        """
        if attempts_made >= self.max_number_of_attempts:
            return None
        coefficient = self.backoff_coefficient or 1.0
        seconds = self.first_retry_interval.total_seconds() * coefficient ** (attempts_made - 1)
        delay = timedelta(seconds=seconds)
        if self.max_retry_interval is not None and delay > self.max_retry_interval:
            delay = self.max_retry_interval
        if self.retry_timeout is not None and now + delay > first_attempt_at + self.retry_timeout:
            return None
        return delay
