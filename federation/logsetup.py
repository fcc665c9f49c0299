"""One log format for every process, so the launcher's merged output reads as one story."""

from __future__ import annotations

import logging
import sys


def setup_logging(component: str, verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s.%(msecs)03d {component} %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
