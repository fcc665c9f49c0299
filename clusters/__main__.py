"""``python -m clusters ...``: the ``ubernetes cluster`` command without the CLI group (used by tests)."""

from clusters.command import cluster

if __name__ == "__main__":
    cluster(prog_name="python -m clusters")
