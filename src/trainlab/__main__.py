"""``python -m trainlab``: the ``trainlab`` command, for environments without the console script."""
from trainlab.cli import main

main(prog_name="trainlab")
