"""The worker side: WorkflowRuntime and what it runs on.

The runtime is split by the state each part owns, each module saying which threads touch it;
imports go one way, down this list:

- ``worker``: the lifecycle, the facade the application, the client (``start_here``) and
  the server (remote workers) call; ``registration``: its registry and the ``register_*``
  methods; ``owners``: freeing the leases of dead runtimes of this host.
- ``dispatcher``: the dispatcher thread (rounds, pauses after errors, idle waits) and the
  watcher thread.
- ``starts``: starts from clients of this process, committed on the client's thread, and
  the pace of a client starting workflows in a loop.
- ``engine``: one round, inline commits, taking on starts; the engine lock. ``claims``: the
  store's claims and lease renewals made without the engine lock. ``commits``: the group
  commit and the isolation of a refused turn. ``outcomes``: acting on what a commit did.
  ``prepare``: each instance's turn; ``detours``: the turns that do not run the workflow
  here (remote answers, stalls, instances set aside). ``pending``: a turn of the round.
- ``cache`` (live generators), ``inflight`` (activities leased here and their leases),
  ``wakeups`` (when to look for work), ``remote`` (turns out to SDK workers),
  ``activities`` (the threads that run activities), ``registry`` (the functions),
  ``options`` (settings, and whether the run is stopping), ``dapr_options`` (the Dapr
  SDK's constructor options, mapped onto treadle's).
- ``codeless_turns``: the commits of turns that run no workflow code (failures, stalls).
- ``turns``: a turn's actions to a store commit (no state); ``remote_workers``: what
  ``treadle serve`` implements to run work in SDK workers; ``remote_history``: the history
  the remote executor keeps for an instance it holds.
- ``observe``: the logs (and metrics) of the engine's work; ``metrics``: the Prometheus
  metrics, imported only when a runtime has them; ``tracing``: the OpenTelemetry spans,
  imported only when a runtime emits them.
- ``chores``: store-wide chores (retention, schedules, activity deadlines) on a thread of
  their own.
- ``threads``: the runtime's threads open their store connections (SQLite) before ``start``
  returns.

This module only re-exports the facade.
"""

from __future__ import annotations

from treadle.runtime.worker import WorkflowRuntime

__all__ = ["WorkflowRuntime"]
