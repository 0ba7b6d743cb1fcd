"""Store URLs as printed: passwords never appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.errors import StoreUnavailableError
from treadle.store import open_store, redact_url


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("postgresql://app:s3cret@db:5432/wf?schema=x")
        == "postgresql://app:***@db:5432/wf?schema=x"
    )
    assert redact_url("postgresql://app@db:5432/wf") == "postgresql://app@db:5432/wf"
    assert redact_url("sqlite:////tmp/treadle.db") == "sqlite:////tmp/treadle.db"


def test_a_sqlite_file_whose_directory_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="cannot create its directory"):
        open_store(f"sqlite:///{blocker / 'sub' / 'treadle.db'}")
