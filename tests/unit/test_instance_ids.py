"""Default instance ids (version 7 UUIDs, unique, in the order they were made) and execution ids."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid

import pytest

from treadle.store.ids import new_execution_id, new_instance_id


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


def test_an_execution_id_is_a_version_4_uuid_in_32_hex_digits_and_never_repeats() -> None:
    ids = [new_execution_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for eid in ids[:100]:
        parsed = uuid.UUID(hex=eid)
        assert len(eid) == 32 and eid == parsed.hex
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_program_that_seeds_random_does_not_make_ids_repeat() -> None:
    random.seed(42)
    first = (new_instance_id(unix_ms=1), new_execution_id())
    random.seed(42)
    assert (new_instance_id(unix_ms=1), new_execution_id()) != first


FORK_AND_PRINT = """
import os, sys
from treadle.store.ids import new_execution_id, new_instance_id
pid = os.fork()
line = f"{'child' if pid == 0 else 'parent'} {new_instance_id(unix_ms=1)} {new_execution_id()}"
if pid == 0:
    os.write(1, (line + "\\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
os.write(1, (line + "\\n").encode())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    # in a fresh interpreter: forking this test process, which may run threads, is unsafe
    out = subprocess.run(
        [sys.executable, "-c", FORK_AND_PRINT], capture_output=True, text=True, check=True
    ).stdout
    ids = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert set(ids) == {"parent", "child"}
    assert ids["parent"][0] != ids["child"][0] and ids["parent"][1] != ids["child"][1]
