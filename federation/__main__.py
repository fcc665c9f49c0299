"""``python -m federation`` runs the ``ubernetes`` CLI (the launcher starts children this way)."""

from federation.cli import main

main(prog_name="ubernetes")
