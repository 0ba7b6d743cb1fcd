"""Store contract: every path by which a store commits turns leaves the same rows.

SqliteStore commits every turn one way. PostgresStore has three paths
(:class:`treadle.store.postgres.commit.CommitPath`): a statement for a single turn, a
statement for a group of simple turns, and a transaction for any group; ``commit_turns``
takes the fastest that can, and a test can force one. Each scenario of
:mod:`.commit_scenarios` is staged on a fresh database for every path that can commit its
turns, committed by that path, and the outcomes and every row of every table (instances,
history, inbox, activity tasks) are compared: accepted turns, and refused ones with their
reasons, which are also the same on every store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from treadle.core.history import EventRaised, OrchestratorStarted
from treadle.store.base import CommitOutcome, NewMessage, Store, TurnCommit
from treadle.store.sqlite import SqliteStore

from . import commit_scenarios as scenarios
from .commit_scenarios import OWNER, Clock, Stage
from .helpers import RUNNING, new_instance
from .rows import Rows, read_rows

ONE_PATH = "one transaction"  # SqliteStore's
SINGLE, GROUP, GENERAL = "single turn", "simple group", "general group"


@dataclass(frozen=True)
class Backend:
    """A kind of store, and fresh databases of it."""

    name: str
    open: Callable[[Clock], Store]

    def paths(self, groups: Sequence[Sequence[TurnCommit]]) -> list[str]:
        """The paths of this store that can commit every one of ``groups``, the one it
        takes by default first."""
        if self.name != "postgres":
            return [ONE_PATH]
        from treadle.store.postgres.commit import choose_path, commit_paths

        able = [[p.value for p in commit_paths(group)] for group in groups]
        assert all(choose_path(g).value == a[0] for g, a in zip(groups, able, strict=True))
        return [p for p in able[0] if all(p in a for a in able)]


def commit_by(store: Store, path: str | None, turns: Sequence[TurnCommit]) -> list[CommitOutcome]:
    """Commit ``turns`` by ``path`` (None: as the store chooses)."""
    if path is None or path == ONE_PATH:
        return store.commit_turns(OWNER, turns)
    from treadle.store.postgres import PostgresStore
    from treadle.store.postgres.commit import CommitPath

    assert isinstance(store, PostgresStore)
    return store.commit_turns(OWNER, turns, path=CommitPath(path))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend whose ``open`` gives a store on a new, empty database each time."""
    name = str(request.param)
    server = str(request.getfixturevalue("postgres_url")) if name == "postgres" else ""
    opened: list[Store] = []
    schemas: list[str] = []

    def open_store(clock: Clock) -> Store:
        key = uuid.uuid4().hex
        store: Store
        if name == "memory":
            store = SqliteStore(f"memory://{key}", clock=clock)
        elif name == "sqlite":
            store = SqliteStore(f"sqlite:///{tmp_path}/{key}.db", clock=clock)
        else:
            from treadle.store.postgres import PostgresStore

            schemas.append(f"t_{key}")
            url = f"{server}{'&' if '?' in server else '?'}schema={schemas[-1]}"
            store = PostgresStore(url, clock=clock, max_size=2)
        opened.append(store)
        return store

    yield Backend(name, open_store)
    for store in opened:
        store.close()
    if schemas:
        import psycopg

        with psycopg.connect(server, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass(frozen=True)
class Scenario:
    """Turns of one shape, and the paths of PostgresStore that can commit them."""

    stage: Stage
    postgres_paths: list[str]


SCENARIOS = {
    "first turn": Scenario(scenarios.first, [SINGLE, GROUP, GENERAL]),
    "last turn": Scenario(scenarios.last, [SINGLE, GROUP, GENERAL]),
    "creating turn": Scenario(scenarios.creating, [SINGLE, GROUP]),
    "creating turn, id taken": Scenario(scenarios.creating_taken, [SINGLE, GROUP]),
    "simple group": Scenario(scenarios.simple_group, [GROUP, GENERAL]),
    "children in other apps": Scenario(scenarios.children_in_apps, [GENERAL]),
    "refusals in a group": Scenario(scenarios.refusals_in_a_group, [GROUP, GENERAL]),
    "refusals alone": Scenario(scenarios.refusals_alone, [SINGLE, GROUP, GENERAL]),
}


def _outcomes(outcomes: Sequence[CommitOutcome]) -> list[tuple[Any, ...]]:
    """Outcomes to compare: an own task's id (unique in the process) as "own"."""
    return [
        (
            o.instance_id,
            o.ok,
            o.version,
            ["own" if i < 0 else i for i in o.new_activity_ids],
            o.error,
        )
        for o in outcomes
    ]


def _comparable(rows: Rows) -> Rows:
    """``rows`` with the inbox's row ids left out: a message is compared by its place in its
    instance's inbox (the order a turn reads them). The paths of a group commit may number
    the messages they send to different instances in another order."""
    return {**rows, "inbox": [row[1:] for row in rows["inbox"]]}


def _run(backend: Backend, scenario: Scenario, path: str | None) -> tuple[list[str], Any, Rows]:
    """Stage ``scenario`` on a fresh store and commit it by ``path`` (None: as the store
    chooses, which is the first path that can); return the paths that could, the outcomes
    and the rows left."""
    clock = Clock()
    store = backend.open(clock)
    staged = scenario.stage(store, clock)
    paths = backend.paths(staged.groups)
    outcomes = [o for group in staged.groups for o in commit_by(store, path, group)]
    assert [o.error for o in outcomes] == staged.errors
    assert [o.ok for o in outcomes] == [e is None for e in staged.errors]
    return paths, _outcomes(outcomes), _comparable(read_rows(store))


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_commit_path_leaves_the_same_rows(backend: Backend, name: str) -> None:
    scenario = SCENARIOS[name]
    paths, outcomes, rows = _run(backend, scenario, None)
    assert paths == (scenario.postgres_paths if backend.name == "postgres" else [ONE_PATH])
    for path in paths[1:]:
        _, other_outcomes, other_rows = _run(backend, scenario, path)
        assert other_outcomes == outcomes, f"{path} vs {paths[0]}"
        for table, table_rows in rows.items():
            assert other_rows[table] == table_rows, f"{table}: {path} vs {paths[0]}"


def test_the_scenarios_write_what_they_say(backend: Backend) -> None:
    """The rows compared above are the ones the scenarios mean to write (the comparison
    would hold as well if a path wrote nothing)."""
    _, outcomes, rows = _run(backend, SCENARIOS["simple group"], None)
    assert [o[:3] for o in outcomes] == [("a", True, 1), ("b", True, 2)]
    instances = {r[0]: r for r in rows["instances"]}
    assert instances["a"][2] == "RUNNING" and instances["a"][6] == '"started"'
    assert instances["b"][6] == '"b2"' and instances["b"][12] == 2
    tasks = [(r[1], r[3], r[8]) for r in rows["activity_tasks"]]
    assert tasks == [("a", 1, OWNER), ("a", 2, None)]  # b's was recorded and deleted
    inbox = [(r[0], r[2].split('"')[3]) for r in rows["inbox"]]  # (instance, kind)
    assert inbox == [("a", "TimerFired"), ("c", "ExecutionStarted"), ("c", "EventRaised")]
    assert [r[1] for r in rows["history"] if r[0] == "b"] == [0, 1, 2, 3, 4]


def _general_only_groups() -> dict[str, list[TurnCommit]]:
    """Groups only the general path of PostgresStore can commit, by what makes them so."""

    def bare(iid: str, **kwargs: Any) -> TurnCommit:
        fields: dict[str, Any] = {
            "instance_id": iid,
            "expected_version": 1,
            "new_events": [OrchestratorStarted()],
            "history_start": 3,
            "status": RUNNING,
            "execution_id": f"{iid}-e1",
        }
        fields.update(kwargs)
        return TurnCommit(**fields)

    return {
        "creates a child": [bare("p", new_instances=[new_instance("p-child")])],
        "continues as new": [bare("p", reset_history=True, history_start=0)],
        "two turns of one instance": [bare("p"), bare("p", expected_version=2)],
        "a message to another turn's instance": [
            bare("p", new_messages=[NewMessage("q", EventRaised(name="hi"))]),
            bare("q"),
        ],
    }


@pytest.mark.postgres
def test_groups_only_the_general_path_commits() -> None:
    pytest.importorskip("psycopg")
    from treadle.store.postgres.commit import CommitPath, choose_path, commit_paths

    for why, group in _general_only_groups().items():
        assert commit_paths(group) == [CommitPath.GENERAL_GROUP], why
        assert choose_path(group) is CommitPath.GENERAL_GROUP, why


@pytest.mark.postgres
def test_a_path_that_cannot_commit_the_turns_is_refused_before_writing(
    postgres_schema_url: str,
) -> None:
    from treadle.store.postgres import PostgresStore
    from treadle.store.postgres.commit import CommitPath

    clock = Clock()
    store = PostgresStore(postgres_schema_url, clock=clock, max_size=1)
    try:
        (creating,) = scenarios.creating(store, clock).groups[0]
        with pytest.raises(ValueError, match="the general group path cannot commit"):
            store.commit_turns(OWNER, [creating], path=CommitPath.GENERAL_GROUP)
        group = _general_only_groups()["two turns of one instance"]
        with pytest.raises(ValueError, match="these can: general group"):
            store.commit_turns(OWNER, group, path=CommitPath.SIMPLE_GROUP)
        assert store.get_instance("o-1") is None and store.get_instance("p") is None
    finally:
        store.close()
