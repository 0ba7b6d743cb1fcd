"""When a schedule fires: cron and interval specs, time zones, daylight saving, catch-up and
overlap, as pure functions of the spec and the time.

Slots are whole seconds, UTC-aware datetimes. A cron spec is read in its IANA time zone:

- a slot in the hour skipped when clocks go forward fires when the skipped hour ends (a
  02:30 job fires at 03:00 on that day);
- a slot in the hour repeated when clocks go back fires once, at its first occurrence, unless
  the cron's hour field is ``*`` (a job that runs every hour, or more often, runs through the
  repeated hour as through any other: it follows elapsed time).

An interval spec (``every``) is elapsed time from its anchor (``start_at``, or the creation
time), whatever the zone.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from treadle.core.records import record_class
from treadle.errors import InvalidInputError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = ["Overlap", "ScheduleSpec", "catchup_start", "next_slot"]


class Overlap(enum.Enum):
    """What a slot does when the instance its schedule started last has not finished."""

    SKIP = "skip"
    """The slot is skipped."""
    BUFFER_ONE = "buffer_one"
    """The slot waits until the running instance finishes (one slot at most waits; later ones
    are skipped)."""
    ALLOW = "allow"
    """The slot starts an instance anyway."""


@record_class
class ScheduleSpec:
    """When a schedule fires and what it does with slots it cannot run at once.

    Attributes:
        anchor: where the slots of ``every`` count from (whole seconds, UTC).
        cron: a 5-field cron expression (minute hour day month weekday), or None.
        every: the interval between slots (whole seconds, at least one), or None.
        time_zone: the IANA zone a cron expression is read in.
        start_at: no slot before this.
        end_at: no slot after this.
        overlap: what a slot does while the last instance runs.
        catchup_window: slots missed (no runtime was running) fire only if they are at most
            this old; older ones are skipped.
    """

    anchor: datetime
    cron: str | None = None
    every: timedelta | None = None
    time_zone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    overlap: Overlap = Overlap.SKIP
    catchup_window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise InvalidInputError("give a schedule either cron= or every=, not both or neither")
        if self.cron is not None and not _valid_cron(self.cron):
            raise InvalidInputError(
                f"cron {self.cron!r} is not a 5-field cron expression "
                "(minute hour day-of-month month day-of-week, such as '*/5 * * * *')"
            )
        if self.every is not None and (
            not isinstance(self.every, timedelta) or self.every < timedelta(seconds=1)
        ):
            raise InvalidInputError(
                f"every must be a timedelta of a second or more, not {self.every!r}"
            )
        zone(self.time_zone)
        if not isinstance(self.catchup_window, timedelta) or self.catchup_window < timedelta(0):
            raise InvalidInputError(
                f"catchup_window must be a timedelta of zero or more, not {self.catchup_window!r}"
            )
        for name in ("anchor", "start_at", "end_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidInputError(f"{name} must be an aware datetime, not {value!r}")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise InvalidInputError("end_at must come after start_at")

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON values (for the store and the APIs)."""
        return {
            "anchor": self.anchor.isoformat(),
            "cron": self.cron,
            "every_s": self.every.total_seconds() if self.every is not None else None,
            "time_zone": self.time_zone,
            "start_at": self.start_at.isoformat() if self.start_at else None,
            "end_at": self.end_at.isoformat() if self.end_at else None,
            "overlap": self.overlap.value,
            "catchup_window_s": self.catchup_window.total_seconds(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleSpec:
        """The spec :meth:`to_json` gave."""

        def when(key: str) -> datetime | None:
            text = data.get(key)
            return datetime.fromisoformat(text) if text else None

        anchor = when("anchor")
        assert anchor is not None
        every = data.get("every_s")
        return cls(
            anchor=anchor,
            cron=data.get("cron"),
            every=timedelta(seconds=every) if every is not None else None,
            time_zone=data.get("time_zone", "UTC"),
            start_at=when("start_at"),
            end_at=when("end_at"),
            overlap=Overlap(data.get("overlap", "skip")),
            catchup_window=timedelta(seconds=data.get("catchup_window_s", 3600)),
        )


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        InvalidInputError: there is no such zone.
    """
    # (imported here: zoneinfo reads sysconfig and the tz path, and only schedules need it)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInputError(
            f"time zone {name!r} is not an IANA time zone name (such as 'Europe/Paris' or 'UTC')"
        ) from None


def _whole(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def next_slot(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first slot of ``spec`` strictly after ``after`` (None when there is none left)."""
    start = spec.start_at
    if start is not None and after < start:
        after = start - timedelta(microseconds=1)
    slot = _next_every(spec, after) if spec.every is not None else _next_cron(spec, after)
    if spec.end_at is not None and slot > spec.end_at:
        return None
    return slot


def catchup_start(spec: ScheduleSpec, now: datetime) -> datetime:
    """The oldest slot time that may still fire at ``now`` (older missed slots are skipped)."""
    return now - spec.catchup_window


def _next_every(spec: ScheduleSpec, after: datetime) -> datetime:
    assert spec.every is not None
    anchor = _whole(spec.anchor)
    step = int(spec.every.total_seconds())
    if after < anchor:
        return anchor
    elapsed = int((after - anchor).total_seconds())
    return anchor + timedelta(seconds=(elapsed // step + 1) * step)


def _next_cron(spec: ScheduleSpec, after: datetime) -> datetime:
    from croniter import croniter  # (imported when a schedule is computed, not with treadle)

    assert spec.cron is not None
    tz = zone(spec.time_zone)
    every_hour = spec.cron.split()[1] == "*"
    moment = after.astimezone(tz)
    it = croniter(spec.cron, moment)
    while True:
        candidate: datetime = it.get_next(datetime)
        # the second occurrence of a wall time repeated when clocks go back: a job at a
        # fixed hour ran at the first one already
        if candidate.fold == 1 and not every_hour and _is_repeated(candidate):
            continue
        return _whole(candidate)


def _valid_cron(cron: object) -> bool:
    from croniter import croniter

    return isinstance(cron, str) and len(cron.split()) == 5 and bool(croniter.is_valid(cron))


def _is_repeated(moment: datetime) -> bool:
    earlier = moment.replace(fold=0)
    return earlier.utcoffset() != moment.utcoffset()
