"""Store URLs as printed: passwords never appear."""

from __future__ import annotations

from treadle.store import redact_url


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("postgresql://app:s3cret@db:5432/wf?schema=x")
        == "postgresql://app:***@db:5432/wf?schema=x"
    )
    assert redact_url("postgresql://app@db:5432/wf") == "postgresql://app@db:5432/wf"
    assert redact_url("sqlite:////tmp/treadle.db") == "sqlite:////tmp/treadle.db"
