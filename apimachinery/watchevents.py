"""What a watch with a selector is sent for one change (issue 11).

A watch that sees only the objects matching its label and field selectors must hear when a
change moves an object into its selection (``ADDED``) or out of it (``DELETED``), as
Kubernetes' watch cache tells it; otherwise an informer keeps an object that no longer
matches until it relists. Both API servers (the federation's watch, a member's) decide with
:func:`as_seen`, given the object before the change when they have it.
"""

from __future__ import annotations

from typing import Any, Callable

Object = dict[str, Any]


def as_seen(etype: str, obj: Object, previous: Object | None,
            wanted: Callable[[Object], bool]) -> tuple[str, Object] | None:
    """``(type, object)`` the watcher gets, or None when the change is not its business."""
    now = wanted(obj)
    if etype != "MODIFIED" or previous is None:
        return (etype, obj) if now else None
    was = wanted(previous)
    if now:
        return ("MODIFIED" if was else "ADDED", obj)
    return ("DELETED", obj) if was else None
