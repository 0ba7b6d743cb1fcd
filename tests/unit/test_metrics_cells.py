"""Metrics cells: records append without a lock and are folded when read."""

from __future__ import annotations

import threading

import pytest

from treadle.runtime import metrics as metrics_module


def test_values_recorded_from_many_threads_are_all_counted() -> None:
    # a record appends without a lock and is folded into the histogram when read, or once
    # enough wait: nothing recorded is lost or counted twice, and little waits unfolded
    worker = metrics_module.WorkerMetrics(app_id="app")
    per_thread = 5 * metrics_module._FOLD_AT + 7

    def record(thread: int) -> None:
        for i in range(per_thread):
            worker.activity_finished("step", "success", (i % 4) / 1000)  # 0-3 ms
            if i % 50 == 0:
                worker.render()  # (a scrape meanwhile folds what waits)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cell = worker._activities.cells[("step", "success")]
    assert len(cell._waiting) < metrics_module._FOLD_AT
    text = worker.render().decode()
    count = 4 * per_thread
    assert (
        'dapr_runtime_workflow_activity_execution_count{activity_name="step",app_id="app",'
        f'namespace="",status="success"}} {float(count)}' in text
    )
    # 0, 1, 2 and 3 ms in equal parts (but the first ones): the sum and the 1 ms bucket
    ones = [(i % 4) for i in range(per_thread)]
    assert cell.total == pytest.approx(4 * sum(ones))
    assert cell.buckets[0] == 4 * sum(1 for v in ones if v <= 1)
