"""Schedule slots: cron in IANA zones across daylight-saving changes, intervals, bounds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from treadle.core.schedules import Overlap, ScheduleSpec, next_slot
from treadle.errors import InvalidInputError

UTC = timezone.utc
T0 = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)


def _slots(spec: ScheduleSpec, after: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    for _ in range(n):
        slot = next_slot(spec, after)
        if slot is None:
            break
        out.append(slot)
        after = slot
    return out


def test_cron_every_five_minutes_in_utc() -> None:
    spec = ScheduleSpec(anchor=T0, cron="*/5 * * * *")
    assert _slots(spec, T0 + timedelta(seconds=1), 2) == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
    ]


def test_a_daily_job_fires_once_on_the_day_clocks_go_back() -> None:
    spec = ScheduleSpec(anchor=T0, cron="30 1 * * *", time_zone="America/New_York")
    assert _slots(spec, T0, 3) == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, the first of two 01:30s
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
        datetime(2026, 11, 3, 6, 30, tzinfo=UTC),
    ]


def test_a_half_hourly_job_runs_through_the_repeated_hour() -> None:
    spec = ScheduleSpec(anchor=T0, cron="*/30 * * * *", time_zone="America/New_York")
    start = datetime(2026, 11, 1, 4, 10, tzinfo=UTC)  # 00:10 EDT
    slots = _slots(spec, start, 6)
    assert [s - start for s in slots] == [timedelta(minutes=20 + 30 * i) for i in range(6)]


def test_a_job_in_the_skipped_hour_fires_when_it_ends() -> None:
    spec = ScheduleSpec(anchor=T0, cron="30 2 * * *", time_zone="America/New_York")
    assert _slots(spec, datetime(2026, 3, 7, 17, tzinfo=UTC), 2) == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 03:00 EDT: 02:30 did not exist
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),
    ]


def test_a_cron_in_a_zone_is_read_in_local_time() -> None:
    spec = ScheduleSpec(anchor=T0, cron="0 9 * * 1", time_zone="Europe/Paris")
    (slot,) = _slots(spec, T0, 1)
    assert slot == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 CET


def test_intervals_count_from_the_anchor_and_keep_to_the_bounds() -> None:
    anchor = T0 + timedelta(microseconds=300)
    spec = ScheduleSpec(
        anchor=anchor, every=timedelta(minutes=10), end_at=T0 + timedelta(minutes=25)
    )
    assert next_slot(spec, T0 - timedelta(days=1)) == T0  # (whole seconds)
    assert _slots(spec, T0, 5) == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]
    later = ScheduleSpec(anchor=T0, every=timedelta(hours=1), start_at=T0 + timedelta(hours=5))
    assert next_slot(later, T0) == T0 + timedelta(hours=5)


def test_the_spec_round_trips_through_json() -> None:
    spec = ScheduleSpec(
        anchor=T0,
        cron="0 * * * *",
        time_zone="Asia/Tokyo",
        end_at=T0 + timedelta(days=3),
        overlap=Overlap.BUFFER_ONE,
        catchup_window=timedelta(minutes=5),
    )
    assert ScheduleSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "*/5 * * * *", "every": timedelta(1)}, "either cron= or every="),
        ({}, "either cron= or every="),
        ({"cron": "every day"}, "not a 5-field cron"),
        ({"every": timedelta(milliseconds=10)}, "a second or more"),
        ({"cron": "* * * * *", "time_zone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"every": timedelta(1), "start_at": datetime(2026, 1, 1)}, "aware datetime"),
    ],
)
def test_bad_specs_say_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ScheduleSpec(anchor=T0, **options)  # type: ignore[arg-type]
