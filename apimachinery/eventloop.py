"""Every process's event loop: uvloop when it is importable, stock asyncio when not (issue 12).

uvloop is a runtime dependency, so a default install runs the DNS responder, the API server,
the member clusters and the launcher on it: the responder answered 91,000-98,000 UDP queries a
second on it against 65,000 on stock asyncio, same 2-core machine, same week (issue 12). It has Linux and
macOS wheels but none for Windows, and a platform without it must still run everything, so the
choice is made here, once, for every command: :func:`run` is ``asyncio.run`` with that loop.

``UBERNETES_EVENT_LOOP`` overrides the choice: ``asyncio`` forces the stock loop (to compare,
or to rule uvloop out while debugging), ``uvloop`` makes a missing uvloop an error instead of a
quiet fallback, ``auto`` (or unset) is the default. It lives in the machinery because every
process already stands on it, and it imports nothing of theirs.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Coroutine, TypeVar

T = TypeVar("T")

ENV = "UBERNETES_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


class EventLoopUnavailable(RuntimeError):
    """``UBERNETES_EVENT_LOOP=uvloop`` was asked for on a machine without uvloop."""


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop``, or None for asyncio's own (what ``asyncio.Runner`` takes).

    ``choice`` is one of :data:`CHOICES`; None reads ``UBERNETES_EVENT_LOOP``.
    """
    choice = (os.environ.get(ENV) or "auto") if choice is None else choice
    choice = choice.strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{ENV}={choice!r}: must be one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as err:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                f"{ENV}=uvloop but uvloop cannot be imported ({err}): `pip install uvloop`, or unset {ENV}"
            ) from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: which loop runs ``loop`` (default the running one)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks.

    A bad ``UBERNETES_EVENT_LOOP`` stops the process with one line and exit status 1.
    """
    try:
        factory = loop_factory()
    except (ValueError, EventLoopUnavailable) as err:
        main.close()  # never awaited: no "coroutine was never awaited" warning on top
        raise SystemExit(f"Error: {err}") from None
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
