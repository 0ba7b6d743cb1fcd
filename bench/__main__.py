"""``python -m bench``: see :mod:`bench`."""

from __future__ import annotations

from bench.cli import main

raise SystemExit(main())
