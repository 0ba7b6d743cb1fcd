"""Queue limits shared through the store, on every backend: two workers that registered
different limits for one queue claim under the same ones (the last registration's, or an
operator's pinned ones), and ``treadle queue`` shows and sets them."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main

from .helpers import Workflow, decoded, finish

TASKS = 6


class Overlap:
    """An activity that records how many of its calls ran at once (its peak)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def __call__(self, ctx: wf.WorkflowActivityContext, n: int) -> int:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.05)  # (work that overlaps with the others', were they let run)
        with self.lock:
            self.running -= 1
        return n


def _worker(
    make_runtime: Callable[..., wf.WorkflowRuntime], mail: Overlap, queue: wf.Queue
) -> wf.WorkflowRuntime:
    runtime = make_runtime(start=False)
    runtime.register_activity(mail, name="mail", queue=queue)

    @runtime.workflow(name="fan_out")
    def fan_out(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        return (yield wf.when_all([ctx.call_activity("mail", input=i) for i in range(n)]))

    runtime.start()
    return runtime


def cli(store_url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", store_url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_workers_that_registered_other_limits_share_the_last_ones(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    store_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mail = Overlap()
    _worker(make_runtime, mail, wf.Queue("mail", concurrency=3))
    with caplog.at_level(logging.WARNING, logger="treadle.runtime.queue_limits"):
        _worker(make_runtime, mail, wf.Queue("mail", concurrency=1))  # (started last)
    assert "the last registration wins" in caplog.text
    (stored,) = client.list_queue_limits()
    assert (stored.queue.concurrency, stored.pinned) == (1, False)
    iid = client.schedule_new_workflow("fan_out", input=TASKS)
    assert decoded(finish(client, iid).serialized_output) == list(range(TASKS))
    assert mail.peak == 1  # the first worker too claimed under concurrency=1
    assert "mail\tconcurrency=1\trate=-\tregistered by" in cli(store_url, "queue", "list")


def test_limits_pinned_with_the_cli_hold_against_registrations(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient, store_url: str
) -> None:
    cli(store_url, "queue", "set", "mail", "--concurrency", "1")
    mail = Overlap()
    _worker(make_runtime, mail, wf.Queue("mail", concurrency=3))  # pinned: its 3 is not used
    iid = client.schedule_new_workflow("fan_out", input=TASKS)
    assert decoded(finish(client, iid).serialized_output) == list(range(TASKS))
    assert mail.peak == 1
    (row,) = json.loads(cli(store_url, "queue", "list", "-o", "json"))
    assert (row["concurrency"], row["pinned"], row["updated_by"]) == (1, True, "operator")
    assert "released" in cli(store_url, "queue", "release", "mail")
    assert client.list_queue_limits()[0].pinned is False
