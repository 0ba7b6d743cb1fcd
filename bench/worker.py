"""A benchmark worker process: ``python -m bench.worker --store URL``.

Runs a WorkflowRuntime with the benchmark application until SIGTERM (or its stdin closes,
so that it never outlives the driver), then shuts down gracefully. It prints ``READY`` on
stdout once the runtime has started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from bench.app import ExecutionLog, build_runtime


def main(argv: list[str] | None = None) -> int:
    """Run one worker until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--store", required=True, help="the store URL")
    parser.add_argument("--execution-log", help="file the W4 activity appends its ids to")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_stop_on_eof, args=(stop,), daemon=True).start()

    log = ExecutionLog(args.execution_log) if args.execution_log else None
    runtime = build_runtime(args.store, execution_log=log)
    runtime.start()
    print("READY", flush=True)
    while not stop.wait(0.2):
        pass
    runtime.shutdown(timeout=10)
    runtime.store.close()
    if log is not None:
        log.close()
    return 0


def _stop_on_eof(stop: threading.Event) -> None:
    sys.stdin.read()
    stop.set()


if __name__ == "__main__":
    raise SystemExit(main())
