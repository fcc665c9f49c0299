"""Reading an experiment's ``events.jsonl`` back: one place that knows the file's shape.

The runner (federation/experiments/runner.py) writes one JSON object per line, each with
``t`` (seconds since the probes started) and ``kind``. The file is read back long after
the run, by the dashboard's report viewer and by tests, sometimes from a run that was
killed: a run stopped mid-write leaves a last line without its newline, cut anywhere. That
line is dropped and reported (``truncated``), because everything before it is still a
true record of the run. Any other bad line is an error that names the line and what is
wrong with it, since a file damaged in the middle cannot be trusted for the figures.

Pure: text in, events out (no file I/O; the caller reads the bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# What the runner writes; a kind outside this set is kept (newer runners may add kinds) but
# listed in ``unknown_kinds`` so a viewer can say it did not draw them.
KINDS = frozenset({"meta", "shards", "fault", "heal", "condition", "verdict", "dns", "client", "end",
                   "leader", "write", "writes-check"})  # the last three: control-plane probes (issue 13)


class EventsFileError(ValueError):
    """An events file that cannot be read: which file, which line, what is wrong."""


@dataclass(frozen=True)
class EventsFile:
    events: list[dict[str, Any]]
    truncated: bool = False  # the last line was cut (a run stopped mid-write) and was dropped
    unknown_kinds: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def meta(self) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("kind") == "meta"), None)


def _event(line: str, lineno: int, source: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as err:
        raise EventsFileError(f"{source}, line {lineno}: not JSON ({err})") from None
    if not isinstance(event, dict):
        raise EventsFileError(f"{source}, line {lineno}: expected a JSON object, got {type(event).__name__}")
    t = event.get("t")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t != t or t < 0:
        raise EventsFileError(f"{source}, line {lineno}: \"t\" must be a number of seconds >= 0, got {t!r}")
    if not isinstance(event.get("kind"), str) or not event["kind"]:
        raise EventsFileError(f"{source}, line {lineno}: \"kind\" must be a non-empty string, got {event.get('kind')!r}")
    return event


def _cut(source: str, lineno: int) -> str:
    return f"{source}, line {lineno}: cut short (the run stopped while writing it); dropped"


def parse_events(text: str, *, source: str = "events.jsonl") -> EventsFile:
    """The events of ``text`` in file order. Blank lines are skipped; a last line without
    its newline that does not parse is dropped (``truncated``); any other bad line raises
    :class:`EventsFileError`."""
    lines = text.split("\n")
    # text.split leaves "" after a final newline; anything else there was cut mid-write
    last = lines.pop()
    events: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            events.append(_event(line, lineno, source))
    truncated = False
    warnings: list[str] = []
    if last.strip():
        try:
            events.append(_event(last, len(lines) + 1, source))
        except EventsFileError:
            truncated = True
            warnings.append(_cut(source, len(lines) + 1))
    unknown = tuple(sorted({e["kind"] for e in events} - KINDS))
    if unknown:
        warnings.append(f"{source}: events of kinds this version does not know, not drawn: {', '.join(unknown)}")
    if events and not any(e["kind"] == "meta" for e in events):
        warnings.append(f"{source}: no meta event (the scenario's clusters and names are unknown)")
    return EventsFile(events=events, truncated=truncated, unknown_kinds=unknown, warnings=tuple(warnings))


def parse_bytes(data: bytes, *, source: str = "events.jsonl") -> EventsFile:
    """:func:`parse_events` on raw bytes, refusing what is not UTF-8 with the offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        # a multi-byte character cut at the very end is a truncated last line too
        # (it sits inside a JSON string, so the line before it can never parse as a whole)
        if err.reason == "unexpected end of data":
            kept = data[:err.start].decode("utf-8")
            cut = kept[kept.rfind("\n") + 1:] if "\n" in kept else kept
            read = parse_events(kept[:len(kept) - len(cut)], source=source)
            lineno = kept.count("\n") + 1
            return EventsFile(events=read.events, truncated=True, unknown_kinds=read.unknown_kinds,
                              warnings=(_cut(source, lineno), *read.warnings))
        raise EventsFileError(f"{source}: not UTF-8 at byte {err.start}") from None
    return parse_events(text, source=source)
