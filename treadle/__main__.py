"""``python -m treadle``: the ``treadle`` command line."""

from treadle.cli import main

main(prog_name="treadle")
