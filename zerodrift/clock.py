"""A shifted clock and time zone for an alembic job's process, and the check that it held.

ZG-1 migrates its second fresh database in a process whose wall clock is years,
months, days, hours, minutes and seconds away from the real one, and whose time
zone is another one, so a revision that bakes the migration's own clock into the
schema (``datetime.now()``, ``date.today()``, a name from the current month) gives
a different schema on the second database, at any hour of any day.

Mechanism: **libfaketime** (the ``libfaketime`` PyPI package bundles the C library),
preloaded into the target's interpreter with ``LD_PRELOAD`` and told the offset with
``FAKETIME="+<seconds>"``. It replaces the C library's time sources
(``clock_gettime(CLOCK_REALTIME)``, ``gettimeofday``, ``time``), which is where
CPython's ``time.time()``, ``datetime.now()``, ``date.today()`` and
``time.localtime()`` read the clock — whatever the interpreter's version and
whatever the target imports, because nothing Python-level is patched. The
monotonic clock is left alone (``DONT_FAKE_MONOTONIC=1``), so timeouts behave, and
so are file timestamps (``NO_FAKE_STAT=1``), so Python's bytecode cache is not
invalidated by a shifted ``stat()``.
A pure-Python patcher (freezegun, time-machine) was not chosen: it would have to be
installed in the *target's* interpreter, and freezegun misses C extensions.

Limits, said plainly:

* Linux with glibc only. On macOS ``DYLD_INSERT_LIBRARIES`` is stripped by System
  Integrity Protection from system interpreters; a statically linked or musl
  interpreter ignores the preload. :func:`verify` then reports that the shift is
  not in effect (the process's own view of its clock is read, not assumed).
* Only the migration *process* is shifted. PostgreSQL's ``now()``,
  ``current_date`` and ``clock_timestamp()`` run on the server's clock, which
  zerodrift cannot shift; ``PGTZ`` changes the session's ``TimeZone`` only. The
  catalog scan in :mod:`zerodrift.catalog.clock_literals` covers values taken from
  that clock (a literal within the run's own time window).
* The target can undo it: ``os.environ["TZ"] = ...; time.tzset()`` in ``env.py``,
  or a Python-level time patch. :func:`verify` reads the clock and the zone inside
  the job *after* ``env.py`` ran and names what overrode them.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

#: Time zone of the first fresh migration (and of its ``PGTZ``).
FIRST_ZONE = "UTC"
#: Time zone of the second one: UTC+14, as far from UTC as a zone gets, no DST.
SECOND_ZONE = "Pacific/Kiritimati"
#: The base shift: about 3 years 5 months 11 days 7 h 23 min 37 s (whole days are then
#: added until every calendar field differs, see :func:`shift_seconds`).
BASE_SHIFT = dt.timedelta(days=3 * 365 + 5 * 30 + 11, hours=7, minutes=23, seconds=37)
#: Seconds of tolerance when comparing the observed clock with the expected one
#: (the observation is made at an unknown instant between job start and end).
TOLERANCE_S = 5.0

_FIELDS = ("year", "month", "day", "hour", "minute", "second")


def _fields(moment: dt.datetime) -> tuple[int, ...]:
    return tuple(getattr(moment, f) for f in _FIELDS)


def every_field_differs(real: dt.datetime, shifted: dt.datetime) -> bool:
    """True when year, month, day, hour, minute and second all differ."""
    return all(a != b for a, b in zip(_fields(real), _fields(shifted)))


def shift_seconds(now: dt.datetime, first_zone: str = FIRST_ZONE, second_zone: str = SECOND_ZONE) -> int:
    """Seconds to add to the real clock so that, at ``now`` (aware), the shifted clock read in
    ``second_zone`` *and* in UTC differs in every field from the real clock read in
    ``first_zone``. Starts from :data:`BASE_SHIFT` and adds whole days (never more than
    a year's worth) until that holds; the hour, minute and second offsets of the base
    (7 h / +14 h zone, 23 min, 37 s) already differ at any instant.
    Raises ValueError when ``now`` is naive."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    real = now.astimezone(ZoneInfo(first_zone))
    for extra_days in range(366):
        delta = BASE_SHIFT + dt.timedelta(days=extra_days)
        moment = now + delta
        if (every_field_differs(real, moment.astimezone(ZoneInfo(second_zone)))
                and every_field_differs(real, moment.astimezone(dt.timezone.utc))):
            return int(delta.total_seconds())
    raise AssertionError("no shift found")  # pragma: no cover - a year of days always has one


def libfaketime_preload() -> str | None:
    """Absolute path of the libfaketime shared library bundled by the ``libfaketime``
    package, or None where it cannot be preloaded (not Linux, package or file missing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import libfaketime
    except ImportError:
        return None
    _, additions = libfaketime.get_reload_information()
    lib_dir = additions.get("LD_LIBRARY_PATH", "")
    soname = additions.get("LD_PRELOAD", "").split(":")[0]
    path = Path(lib_dir) / soname
    return str(path) if lib_dir and soname and path.is_file() else None


@dataclass
class ClockShift:
    """The clock and zone one alembic job runs under.

    ``offset_s`` is added to the real wall clock (0: the real clock), ``zone`` is an
    IANA zone set as ``TZ`` and ``PGTZ``. :meth:`environment` gives the variables.
    """

    offset_s: int
    zone: str

    def environment(self, inherited: dict[str, str]) -> dict[str, str]:
        """Variables to add to the job's environment (``inherited`` is the environment
        it would otherwise get, for an ``LD_PRELOAD`` already there). Without an offset
        only ``TZ``/``PGTZ``; with one also ``LD_PRELOAD``/``FAKETIME`` — unless
        libfaketime cannot be preloaded here, which :func:`verify` then reports."""
        env = {"TZ": self.zone, "PGTZ": self.zone}
        if self.offset_s:
            lib = libfaketime_preload()
            if lib:
                preload = inherited.get("LD_PRELOAD", "")
                env.update(LD_PRELOAD=lib + (":" + preload if preload else ""), FAKETIME=f"{self.offset_s:+d}",
                           DONT_FAKE_MONOTONIC="1", NO_FAKE_STAT="1", FAKETIME_NO_CACHE="1")
        return env

    def describe(self) -> str:
        if not self.offset_s:
            return f"real clock, TZ={self.zone}"
        return f"clock {format_offset(self.offset_s)} (libfaketime), TZ={self.zone}"


def format_offset(seconds: float) -> str:
    """``+1256d 07:23:37`` style text of an offset in seconds."""
    sign = "-" if seconds < 0 else "+"
    s = int(round(abs(seconds)))
    days, rest = divmod(s, 86400)
    return f"{sign}{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


@dataclass
class ClockVerdict:
    """What :func:`verify` found: ``ok`` and a one-paragraph ``detail``; ``environment``
    is True when the cause is the machine (libfaketime not loaded), not the target."""

    ok: bool
    detail: str
    environment: bool = False
    #: True when the only problem is the zone: the target pins its own time zone (``TZ`` +
    #: ``time.tzset()``) while the clock shift held — a deliberate setting, not a fault, but
    #: independence from the zone is then not shown
    zone_pinned: bool = False


def verify(shift: ClockShift, observed: dict[str, Any] | None, started: float, ended: float) -> ClockVerdict:
    """Compare the clock a job observed (the ``clock`` op of the alembic job probe, read
    after ``env.py`` ran) with ``shift``. ``started``/``ended`` are zerodrift's real
    ``time.time()`` around the job, in seconds.

    Not ok when the zone in effect (``tm_gmtoff``, ``TZ``) is not ``shift.zone``, when
    ``time.time()`` or ``datetime.now()`` is not the real clock plus ``shift.offset_s``
    (± :data:`TOLERANCE_S`) read in that zone, or when ``time.time``/``datetime.datetime``/
    ``datetime.date`` were replaced at Python level (freezegun and the like), naming
    what overrode it: ``TZ`` changed by the target, ``FAKETIME`` changed, a Python-level
    patch, or libfaketime not loaded (``environment`` is then True: the machine's fault).
    """
    if not observed:
        return ClockVerdict(False, "the job did not report its clock", environment=True)
    seen = observed["time"]
    offset = seen - (started + ended) / 2
    half = (ended - started) / 2 + TOLERANCE_S
    expected_gmtoff = int(dt.datetime.fromtimestamp(seen, ZoneInfo(shift.zone)).utcoffset().total_seconds())
    facts = (f"observed after env.py: time.time()={seen:.0f} ({format_offset(offset)} from the real clock), "
             f"datetime.now()={observed['local']}, tm_gmtoff={observed['gmtoff']:+d} s, TZ={observed['tz_env']!r}")
    problems = []
    env_problem = False
    zone_problems = 0
    if observed["tz_env"] != shift.zone:
        zone_problems += 1
        problems.append(f"TZ is {observed['tz_env']!r}, not {shift.zone!r}: the target (env.py or a module it "
                        "imports) set os.environ['TZ']")
    if observed["gmtoff"] != expected_gmtoff:
        zone_problems += 1
        problems.append(f"the process's UTC offset is {observed['gmtoff']:+d} s, not {expected_gmtoff:+d} s "
                        f"({shift.zone}): the time zone was changed in the process (time.tzset())")
    if observed.get("patched"):
        problems.append("the target replaced " + ", ".join(observed["patched"]) + " at Python level: what its "
                        "migrations read as the time is not the process's clock")
    # datetime.now() must read the process's clock in the process's own zone (a zone other than
    # shift.zone is reported above, once)
    expected_local = dt.datetime.fromtimestamp((started + ended) / 2 + shift.offset_s,
                                               dt.timezone(dt.timedelta(seconds=observed["gmtoff"])))
    try:
        local_off = (dt.datetime.fromisoformat(observed["local"]).replace(tzinfo=None)
                     - expected_local.replace(tzinfo=None)).total_seconds()
    except (TypeError, ValueError):
        local_off = float("inf")
    clock_right = abs(offset - shift.offset_s) <= half
    if clock_right and abs(local_off) > half + 1:  # reported to the second; a wrong clock is reported below
        problems.append(f"datetime.now() read {observed['local']}, expected about "
                        f"{expected_local:%Y-%m-%dT%H:%M:%S} (UTC{observed['gmtoff'] / 3600:+g} h)")
    if not clock_right:
        if shift.offset_s and not observed.get("faketime_loaded"):
            cause = ("libfaketime is not loaded in the target's interpreter (not Linux/glibc, or LD_PRELOAD "
                     "was ignored)")
            env_problem = True
        elif shift.offset_s and observed.get("faketime_env") != f"{shift.offset_s:+d}":
            cause = f"FAKETIME is {observed.get('faketime_env')!r}: the target changed it"
        else:
            cause = "the target changed the process's clock"
        problems.append(f"the clock is {format_offset(offset)} from the real one, expected "
                        f"{format_offset(shift.offset_s)}: {cause}")
    if problems:
        return ClockVerdict(False, "; ".join(problems) + f" — {facts}", environment=env_problem and len(problems) == 1,
                            zone_pinned=zone_problems == len(problems))
    return ClockVerdict(True, f"{shift.describe()} in effect — {facts}")


__all__ = ["ClockShift", "ClockVerdict", "shift_seconds", "verify", "libfaketime_preload", "every_field_differs",
           "format_offset", "FIRST_ZONE", "SECOND_ZONE"]
