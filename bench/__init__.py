"""treadle's benchmark: ``python -m bench`` prints figures (it asserts no times).

Workloads, each on a fresh store with fresh worker processes (``python -m bench.worker``)
while this process only starts workflows and waits with a WorkflowClient:

- W1a: the seed's task chain, one workflow at a time: median and p99 latency.
- W1b: the task chain, thousands at once: workflows/s and activities/s.
- W1a and W1b again with the runtime and the client in one process (``python -m
  bench.inproc``), as the README's first example and most embedded applications run: a start
  is then taken by the runtime with its first turn. Printed as rows of their own
  (``..., one process``).
- W2: fan-out/fan-in of 100 and 1,000 items: wall time.
- W3: one workflow of 1,000 to 10,000 sequential steps: wall time, ms per step, and
  time(10k)/time(1k) (target < 12: the cost of a step must not grow with history).
- W4: SIGKILL a worker half-way through a 2,000-step chain, restart: time to finish and
  re-executions of steps already recorded.
- Peak RSS of the worker processes for each.

Options: ``--store sqlite|postgres|both``, ``--workers 1,2,4``, ``--quick``,
``--only W1,W3``, ``--json FILE``, ``--peer dbos`` (the same workloads on DBOS Transact, when
``import dbos`` works), ``--profile DIR`` (py-spy samples of the workers and of the runs in
one process, and treadle's hot spots), ``--sdk python|js`` (W1a, W1b and W3 through
``treadle serve`` with an official Dapr SDK, beside the embedded figures: :mod:`bench.sdk`),
``--sdk-ab DIR`` (each SDK workload again with the server of another checkout). PostgreSQL
is at ``$TREADLE_BENCH_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/test``.

``python -m bench.ab OLD NEW -- OPTIONS`` runs the bench of two trees or git revisions
alternately and summarises each figure's medians and ratio (:mod:`bench.ab`).
"""

from __future__ import annotations
