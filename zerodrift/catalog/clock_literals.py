"""Date and timestamp literals in a catalog snapshot that fall within a run's own time window.

A value that a migration took from a clock — the migration process's (``datetime.now()``,
``date.today()``) or the server's (``now()``, ``current_date`` evaluated inside a ``DO``
block and written into DDL) — ends up in the catalog as a literal: a column default, a
CHECK constraint, a view, matview or function body, a comment, a partition bound, an
object name. Such a literal lies within the time window of the run that migrated the
database (or within the shifted window of a clock-shifted migration), which a
hand-written literal practically never does. ZG-1 reports each as a FAIL row.

What counts as a literal (in every string of the snapshot, object identities included):

* a date ``YYYY-MM-DD`` (also with ``_`` or ``/`` or no separator), optionally followed
  by a time ``hh:mm[:ss[.ffffff]]`` and a UTC offset (``Z``, ``+hh``, ``+hh:mm``);
* a year-month ``YYYY-MM`` or ``YYYY_MM`` (a partition or table named after the month).

When a literal falls within the window — precision matters:

* with a UTC offset: its instant lies within the window ± ``slack_s``;
* a timestamp without offset may have been written in any zone (UTC−12 … UTC+14): its
  wall-clock value lies within [start − 12 h, end + 14 h] ± ``slack_s``;
* a date: it is the date of some instant of the window in some zone;
* a year-month: it is the month of such a date.

Month names (``November 2026``) are not recognised; the clock shift of the second
fresh database shows them as a diff row instead.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zerodrift.catalog.snapshot import CatalogSnapshot

#: Seconds of slack around a window for timestamps (server and zerodrift clocks may differ a little).
SLACK_S = 300.0
_WEST = dt.timedelta(hours=12)  # the most western zone, UTC−12
_EAST = dt.timedelta(hours=14)  # the most eastern zone, UTC+14

_STAMP = re.compile(
    r"(?<![0-9])(?P<y>[12][0-9]{3})(?P<sep>[-_/]?)(?P<mo>[0-9]{2})(?P=sep)(?P<d>[0-9]{2})"
    r"(?:[ T_](?P<h>[0-9]{2})[:_]?(?P<mi>[0-9]{2})(?:[:_]?(?P<s>[0-9]{2})(?:\.[0-9]+)?)?"
    r"(?:\s*(?P<tz>Z|[+-][0-9]{2}(?::?[0-9]{2})?))?)?(?![0-9])")
_MONTH = re.compile(r"(?<![0-9])(?P<y>[12][0-9]{3})[-_](?P<mo>[0-9]{2})(?![-_/]?[0-9])")


@dataclass(frozen=True)
class Window:
    """A span of real time (aware datetimes) and a label for messages, e.g. "the run's clock"."""

    start: dt.datetime
    end: dt.datetime
    label: str

    def dates(self) -> set[dt.date]:
        """Every calendar date some instant of the window has in some zone."""
        first, last = (self.start - _WEST).date(), (self.end + _EAST).date()
        return {first + dt.timedelta(days=i) for i in range((last - first).days + 1)}


@dataclass(frozen=True)
class ClockLiteral:
    """One literal found: where (kind, object identity, attribute) and which window it fell in."""

    kind: str
    identity: str
    attribute: str
    literal: str
    window: str

    def describe(self) -> str:
        """One line naming the object and how the literal matched: a date (or month) by its
        calendar date, a timestamp without a zone as a local time of some zone, else as an instant."""
        m = _STAMP.fullmatch(self.literal)
        if m is None:
            how = f"{self.literal!r} is a month within {self.window} (matched by its year and month)"
        elif m["h"] is None:
            how = f"{self.literal!r} is a date within {self.window} (matched by its calendar date)"
        elif not m["tz"]:
            how = (f"{self.literal!r} (no time zone) is within {self.window} read as the local time of some "
                   "zone from UTC−12 to UTC+14")
        else:
            how = f"{self.literal!r} is within {self.window}"
        return f"{self.kind} {self.identity} {self.attribute}: {how}"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _naive_within(moment: dt.datetime, window: Window, slack: dt.timedelta) -> bool:
    lo = (window.start - _WEST - slack).replace(tzinfo=None)
    hi = (window.end + _EAST + slack).replace(tzinfo=None)
    return lo <= moment <= hi


def literal_in_window(text: str, window: Window, slack_s: float = SLACK_S) -> list[str]:
    """The date/timestamp literals of ``text`` that fall within ``window`` (rules in the module doc)."""
    slack = dt.timedelta(seconds=slack_s)
    start_utc, end_utc = window.start.astimezone(dt.timezone.utc), window.end.astimezone(dt.timezone.utc)
    found: list[str] = []
    dates = None
    for m in _STAMP.finditer(text):
        try:
            day = dt.date(int(m["y"]), int(m["mo"]), int(m["d"]))
        except ValueError:
            continue
        if m["h"] is None:
            dates = window.dates() if dates is None else dates
            if day in dates:
                found.append(m.group(0))
            continue
        try:
            moment = dt.datetime(day.year, day.month, day.day, int(m["h"]), int(m["mi"]), int(m["s"] or 0))
        except ValueError:
            continue
        precision = dt.timedelta(seconds=1 if m["s"] else 60)  # a truncated value lies up to this much before
        if m["tz"]:
            tz = m["tz"]
            if tz == "Z":
                offset = dt.timedelta(0)
            else:
                digits = tz[1:].replace(":", "")
                offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
                offset = -offset if tz[0] == "-" else offset
            instant = moment.replace(tzinfo=dt.timezone(offset))
            if start_utc - slack - precision <= instant <= end_utc + slack:
                found.append(m.group(0))
        elif _naive_within(moment, window, slack + precision):
            found.append(m.group(0))
    for m in _MONTH.finditer(text):
        try:
            month = dt.date(int(m["y"]), int(m["mo"]), 1)
        except ValueError:
            continue
        dates = window.dates() if dates is None else dates
        if any(d.replace(day=1) == month for d in dates):
            found.append(m.group(0))
    return found


def clock_literals(snapshot: CatalogSnapshot, windows: list[Window], slack_s: float = SLACK_S) -> list[ClockLiteral]:
    """Every literal of ``snapshot`` (identities and attribute values, nested ones too) within
    one of ``windows``, in snapshot order; the identity itself is reported as attribute ``name``."""
    found: list[ClockLiteral] = []
    for kind, members in snapshot.objects.items():
        for identity, attrs in members.items():
            for attribute, text in [("name", identity), *_strings(attrs, "")]:
                for window in windows:
                    for literal in literal_in_window(text, window, slack_s):
                        found.append(ClockLiteral(kind, identity, attribute, literal, window.label))
    return found


__all__ = ["Window", "ClockLiteral", "clock_literals", "literal_in_window", "SLACK_S"]
