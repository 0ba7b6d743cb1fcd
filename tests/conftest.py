"""Fixtures shared by the test suites: a store for every backend.

``store`` is parametrized over memory (SQLite in memory), sqlite (a file) and postgres (a fresh
schema per test, dropped afterwards). PostgreSQL is ``$TREADLE_TEST_POSTGRES`` or
``postgresql://postgres@127.0.0.1:5432/test``; when it is unreachable its tests skip, unless
``TREADLE_REQUIRE_POSTGRES=1`` (CI), which makes them fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, settings

from treadle.store.base import Store
from treadle.store.sqlite import SqliteStore

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

# The property tests run real stores, replays and codecs: one example can take longer than
# hypothesis's 200 ms deadline on a loaded machine, which fails the test without a bug; its
# "too slow" health check (data generation timed by the wall clock) is the same. No deadline and
# no timed health check anywhere; max_examples stays each test's own.
settings.register_profile("treadle", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("treadle")


class FakeClock:
    """A settable clock (seconds since the epoch) to inject into stores."""

    def __init__(self, t: float = 1_900_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=timezone.utc)


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema=NAME`` added to its query string."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; skips (or fails, under TREADLE_REQUIRE_POSTGRES=1) if unreachable."""
    url = os.environ.get("TREADLE_TEST_POSTGRES", DEFAULT_POSTGRES_URL)
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:
        detail = " ".join(str(exc).split())
        reason = (
            f"PostgreSQL is unreachable at {url} ({type(exc).__name__}: {detail}); "
            "start it or point TREADLE_TEST_POSTGRES at one"
        )
        if os.environ.get("TREADLE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (TREADLE_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A store URL with a fresh schema of its own, dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex}"
    yield with_schema(postgres_url, schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Callable[..., Store]]:
    """Open stores on one fresh database of the backend: ``make_store(clock=None)``.

    Every store opened is closed after the test.
    """
    if request.param == "memory":
        url = f"memory://{uuid.uuid4().hex}"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/treadle.db"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    opened: list[Store] = []

    def make(clock: Callable[[], float] | None = None) -> Store:
        if request.param == "postgres":
            from treadle.store.postgres import PostgresStore

            store: Store = PostgresStore(url, clock=clock, max_size=4)
        else:
            store = SqliteStore(url, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.close()


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock of ``store``."""
    return FakeClock()


@pytest.fixture
def store(make_store: Callable[..., Store], clock: FakeClock) -> Store:
    """A fresh, empty store on every backend, on the ``clock`` fixture's time."""
    return make_store(clock=clock)
