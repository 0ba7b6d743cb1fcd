"""Several apps through the sidecar: three ``treadle serve --app-id`` processes on one store,
one official SDK worker each, calling one another with ``app_id=`` (as the Dapr SDK's
multi-app examples do, one ``dapr run --app-id`` per app)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_env import sdk_python

from treadle.store import open_store

from .helpers import wait_until
from .sidecar import Served, describe, last_line, run_sdk, sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv

APPS = ("orders", "shipping", "billing")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The one store of the three sidecars."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'apps.db'}"


@contextlib.contextmanager
def apps(tmp_path: Path, db: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """A sidecar and an SDK worker per app, on ``db``; yields the "orders" sidecar."""
    python = sdk_python()
    with contextlib.ExitStack() as stack:
        served = {app: stack.enter_context(serve(tmp_path, "--app-id", app, db=db)) for app in APPS}
        for app in APPS:
            log = tmp_path / f"{app}.log"
            worker = ["apps.py", "--address", served[app].address, "--role", app]
            stack.enter_context(sdk_process(python, *worker, env=env, log=log))
            wait_until(
                lambda: "worker ready" in log.read_text(),  # noqa: B023 (called at once)
                timeout=60,
                what=f"the {app} SDK worker",
                state=log.read_text,
            )
        yield served["orders"]


def _run_order(served: Served, tmp_path: Path, iid: str) -> dict[str, object]:
    result = run_sdk(
        sdk_python(), "client.py", "--address", served.address, "--name", "order",
        "--input", "21", "--id", iid, "--timeout", "60",
    )  # fmt: skip
    assert result.returncode == 0, describe(result, served)
    out = json.loads(last_line(result.stdout))
    assert out["status"] == "COMPLETED", (out, served.logs())
    output = out["output"]
    assert isinstance(output, dict)
    return output


def test_sdk_apps_call_each_other_through_their_sidecars(tmp_path: Path, db: str) -> None:
    with apps(tmp_path, db) as orders:
        output = _run_order(orders, tmp_path, "order-1")
    assert output == {
        "paid": {"charged": 21, "by": "billing"},
        "shipped": {"packed": 42, "by": "shipping"},
    }
    store = open_store(db)
    try:
        apps_of = {iid: store.get_instance(iid) for iid in ("order-1", "order-1:0002")}
        assert {k: v.app_id if v else None for k, v in apps_of.items()} == {
            "order-1": "orders",
            "order-1:0002": "shipping",
        }
    finally:
        store.close()


def test_an_sdk_activity_failing_in_another_app_is_a_task_failed_error(
    tmp_path: Path, db: str
) -> None:
    with apps(tmp_path, db, env={"FAIL_CHARGE": "1"}) as orders:
        output = _run_order(orders, tmp_path, "order-2")
    paid = output["paid"]
    assert isinstance(paid, dict) and "card declined for 21" in str(paid["error"])
    assert output["shipped"] == {"packed": 42, "by": "shipping"}
