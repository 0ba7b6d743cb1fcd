"""The conformance kit (shared/conformance) against ``treadle serve``, through the real Dapr SDK.

Every case of the kit must pass: the official Python SDK then uses treadle as it uses daprd.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sdk_env import sdk_python

from .sidecar import conformance_kit, serve


def run_kit(tmp_path: Path, db: str | None = None) -> None:
    kit = conformance_kit()
    python = sdk_python()
    with serve(tmp_path, db=db) as served:
        result = subprocess.run(
            [str(python), str(kit / "run_all.py"), "--address", served.address],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    summary = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert result.returncode == 0 and summary is not None and summary.group(2) == "0", (
        f"conformance kit exited {result.returncode}; failing cases:\n"
        + "\n".join(failures)
        + f"\n\nfull output:\n{result.stdout}\n{result.stderr[-3000:]}\n"
        + f"server log:\n{served.logs()[-3000:]}"
    )
    assert int(summary.group(1)) >= 33


@pytest.mark.timeout(300)  # the first run builds the SDK venv (~20 s); the kit takes ~15 s
def test_conformance_kit_passes_every_case(tmp_path: Path) -> None:
    run_kit(tmp_path)


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_conformance_kit_passes_every_case_on_postgres(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    run_kit(tmp_path, db=postgres_schema_url)
