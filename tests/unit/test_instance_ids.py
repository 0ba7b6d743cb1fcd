"""Default instance ids: version 7 UUIDs, unique, in the order they were made."""

from __future__ import annotations

import uuid

from treadle.store.ids import new_instance_id


def test_an_instance_id_is_a_version_7_uuid_in_32_hex_digits() -> None:
    iid = new_instance_id(unix_ms=1_765_000_000_123)
    assert len(iid) == 32 and iid == iid.lower() and int(iid, 16) >= 0
    parsed = uuid.UUID(hex=iid)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == 1_765_000_000_123  # the time, in milliseconds


def test_ids_sort_by_the_time_they_were_made_and_never_repeat() -> None:
    earlier = [new_instance_id(unix_ms=1_765_000_000_000) for _ in range(1000)]
    later = [new_instance_id(unix_ms=1_765_000_000_001) for _ in range(1000)]
    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 2000  # 74 random bits within one millisecond
    assert new_instance_id() > new_instance_id(unix_ms=1_765_000_000_000)  # now: later
