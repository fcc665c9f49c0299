"""``python -m fedns``: the same command as ``ubernetes dns``."""

from fedns.command import dns

if __name__ == "__main__":
    dns(prog_name="fedns")
