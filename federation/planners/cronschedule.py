"""CronJob schedules: parse one, and find the times it fires (pure; issue 15).

Kubernetes parses ``spec.schedule`` with robfig/cron's standard parser: five fields
(minute, hour, day of month, month, day of week) with ``*``, lists, ranges and ``/`` steps,
month and weekday names, and the descriptors ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``), ``@hourly`` and ``@every <duration>``. The same
parser backs the federation's validation (a schedule the members would refuse is refused
at the federation too) and the members' CronJob controller.

``@every 2s`` is what tests use: a real cluster accepts it as well, and it is the only way
to fire more often than once a minute. Times are UTC seconds since the epoch (the
``CRON_TZ=``/``TZ=`` prefix and ``spec.timeZone`` are not supported and refused).

As in the real controller, the day-of-month and day-of-week fields combine with OR when
both are restricted, AND otherwise.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, MONTHS),
          ("day of week", 0, 6, WEEKDAYS))
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ScheduleError(ValueError):
    """The schedule does not parse; the message says which part and why."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    day_star: bool = True
    weekday_star: bool = True
    every: float = 0.0  # @every: seconds between runs

    def _matches(self, t: time.struct_time) -> bool:
        if t.tm_min not in self.minutes or t.tm_hour not in self.hours or t.tm_mon not in self.months:
            return False
        day_ok, weekday_ok = t.tm_mday in self.days, (t.tm_wday + 1) % 7 in self.weekdays
        if self.day_star or self.weekday_star:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, after: float) -> float:
        """The first time the schedule fires strictly after ``after`` (within 5 years)."""
        if self.every:
            return (int(after // self.every) + 1) * self.every
        t = (int(after) // 60 + 1) * 60
        for _ in range(5 * 366 * 24 * 60):
            if self._matches(time.gmtime(t)):
                return float(t)
            t += 60
        raise ScheduleError("the schedule never fires")

    def last_at_or_before(self, now: float, *, since: float) -> float | None:
        """The latest time in ``(since, now]`` the schedule fires, or None (the missed
        runs before it are one run, as the controller's ``mostRecentScheduleTime`` has it)."""
        if self.every:
            last = int(now // self.every) * self.every
            return float(last) if last > since else None
        found = None
        t = self.next_after(since)
        while t <= now:
            found = t
            t = self.next_after(t)
        return found


def _duration(text: str) -> float:
    m = DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ScheduleError(f"@every: {text.strip()!r} is not a duration such as 30s, 5m or 1h30m")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ScheduleError("@every: the duration must be positive")
    return float(seconds)


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{name}: bad step {step_text!r}")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = low, high
        else:
            first, dash, last = rng.partition("-")
            start = _value(first, name, low, high, names)
            end = _value(last, name, low, high, names) if dash else (high if step_text else start)
            if end < start:
                raise ScheduleError(f"{name}: range {rng!r} ends before it starts")
        values.update(range(start, end + 1, step))
    return frozenset(values), text in ("*", "?")


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f"{name}: {text!r} is not a number")
    value = int(text)
    if name == "day of week" and value == 7:
        return 0
    if not low <= value <= high:
        raise ScheduleError(f"{name}: {value} is outside {low}-{high}")
    return value


def parse(text: str) -> Schedule:
    """A schedule from ``spec.schedule``; raises :class:`ScheduleError`."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("empty schedule")
    text = text.strip()
    if text.startswith(("CRON_TZ=", "TZ=")):
        raise ScheduleError("time zones in the schedule are not supported: schedules run in UTC")
    if text.startswith("@every"):
        return Schedule(every=_duration(text[len("@every"):]))
    text = DESCRIPTORS.get(text, text)
    if text.startswith("@"):
        raise ScheduleError(f"unrecognized descriptor {text!r}")
    parts = text.split()
    if len(parts) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(parts)}: {text!r}")
    parsed = [_field(p, name, low, high, names) for p, (name, low, high, names) in zip(parts, FIELDS)]
    return Schedule(minutes=parsed[0][0], hours=parsed[1][0], days=parsed[2][0], months=parsed[3][0],
                    weekdays=parsed[4][0], day_star=parsed[2][1], weekday_star=parsed[4][1])


def problem(text: object) -> str | None:
    """Why ``text`` is not a schedule (None when it is)."""
    try:
        parse(text)  # type: ignore[arg-type]
    except ScheduleError as err:
        return str(err)
    return None
