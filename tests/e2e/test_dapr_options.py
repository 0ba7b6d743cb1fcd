"""The Dapr SDK's runtime and client options, ``alternate_name`` and ``wait_for_worker_ready``
behave in treadle as their names say."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import treadle as wf

from .helpers import Workflow, decoded, finish


def test_the_sdks_concurrency_options_are_treadles_limits(
    make_runtime: Callable[..., wf.WorkflowRuntime],
) -> None:
    runtime = make_runtime(
        start=False,
        host="localhost",
        port="50001",
        interceptors=[object()],
        maximum_concurrent_activity_work_items=3,
        maximum_concurrent_orchestration_work_items=7,
        maximum_thread_pool_workers=2,
    )
    assert (runtime.max_concurrent_activities, runtime.max_concurrent_workflows) == (3, 7)
    plain = make_runtime(start=False, max_concurrent_activities=5)
    assert plain.max_concurrent_activities == 5
    with pytest.raises(ValueError, match="maximum_concurrent_activity_work_items"):
        make_runtime(start=False, maximum_concurrent_activity_work_items=0)


def test_wait_for_worker_ready_says_whether_it_works(
    make_runtime: Callable[..., wf.WorkflowRuntime],
) -> None:
    runtime = make_runtime(start=False, worker_ready_timeout=0.05)
    assert runtime.wait_for_worker_ready() is False
    assert runtime.wait_for_worker_ready(timeout=0) is False
    runtime.start()
    assert runtime.wait_for_worker_ready(timeout=0) is True
    runtime.shutdown(timeout=5)
    assert runtime.wait_for_worker_ready(timeout=0) is False


@dataclass
class LoggerOptions:
    """What the SDK's ``LoggerOptions`` holds."""

    log_level: int | None = None
    log_handler: logging.Handler | None = None
    log_formatter: logging.Formatter | None = None


@pytest.fixture
def treadle_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("treadle")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_logger_options_configure_treadles_loggers(
    make_runtime: Callable[..., wf.WorkflowRuntime], treadle_logger: logging.Logger
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    options = LoggerOptions(logging.DEBUG, handler, logging.Formatter("[%(name)s] %(message)s"))
    make_runtime(start=False, logger_options=options)
    make_runtime(start=False, logger_options=options)
    assert treadle_logger.level == logging.DEBUG
    assert treadle_logger.handlers.count(handler) == 1  # once, however many runtimes
    logging.getLogger("treadle.runtime").debug("hello")
    assert out.getvalue() == "[treadle.runtime] hello\n"


def test_alternate_name_is_the_registered_name(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    @wf.alternate_name("twice")
    def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return 2 * n

    @runtime.workflow
    @wf.alternate_name(name="doubler")
    def doubling(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        doubled: int = yield ctx.call_activity("twice", input=n)
        return doubled

    assert "doubler" in runtime.workflow_names and "twice" in runtime.activity_names
    state = finish(client, client.schedule_new_workflow("doubler", input=21))
    assert decoded(state.serialized_output) == 42
    # the function itself names the workflow too
    state = finish(client, client.schedule_new_workflow(doubling, input=2))
    assert decoded(state.serialized_output) == 4
    with pytest.raises(wf.RegistrationError, match="already has the alternate name"):
        wf.alternate_name("again")(doubling)


def test_the_clients_take_the_sdks_options(store_url: str) -> None:
    with wf.DaprWorkflowClient(store_url, host="h", port=1, logger_options=LoggerOptions()):
        pass
