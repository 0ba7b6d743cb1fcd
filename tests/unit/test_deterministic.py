"""The deterministic helpers' values: repeatable, in range, and the SDK's UUIDs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from treadle.core.deterministic import DeterministicRandom, workflow_random, workflow_uuid

AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def test_uuids_are_the_dapr_sdks() -> None:
    # what dapr.ext.workflow 1.18.3's deterministic_uuid_v5("i-1", <naive AT>, 0) gives
    assert str(workflow_uuid("i-1", AT, 0)) == "c1d04746-7d50-5809-a9b2-6097701caa1f"
    assert workflow_uuid("i-1", AT, 1) != workflow_uuid("i-1", AT, 0)
    assert workflow_uuid("i-2", AT, 0) != workflow_uuid("i-1", AT, 0)


def test_the_same_seed_gives_the_same_numbers() -> None:
    a, b = workflow_random("i-1", AT, 0), workflow_random("i-1", AT, 0)
    assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]
    assert workflow_random("i-1", AT, 1).random() != workflow_random("i-1", AT, 0).random()


def test_the_numbers_are_in_range_and_spread() -> None:
    rnd = DeterministicRandom(b"seed")
    floats = [rnd.random() for _ in range(2000)]
    assert all(0.0 <= f < 1.0 for f in floats)
    assert 0.45 < sum(floats) / len(floats) < 0.55
    dice = [rnd.randint(1, 6) for _ in range(3000)]
    assert set(dice) == {1, 2, 3, 4, 5, 6}
    assert all(400 < dice.count(n) < 600 for n in range(1, 7))
    assert all(rnd.randrange(10, 20, 5) in (10, 15) for _ in range(50))
    assert 2.0 <= rnd.uniform(2.0, 3.0) <= 3.0
    items = list(range(20))
    rnd.shuffle(items)
    assert sorted(items) == list(range(20)) and items != list(range(20))
    assert len(set(rnd.sample(range(100), 10))) == 10
    assert rnd.choice("xyz") in "xyz"
    assert rnd.getrandbits(300) < 2**300


def test_bad_arguments_raise() -> None:
    rnd = DeterministicRandom(b"seed")
    with pytest.raises(ValueError, match="empty range"):
        rnd.randrange(5, 5)
    with pytest.raises(IndexError):
        rnd.choice([])
    with pytest.raises(ValueError):
        rnd.sample([1, 2], 3)
