"""ZG-1 and the migration's clock: a shifted clock and zone that really hold, literals from the clock.

Unit tests for the shift arithmetic, the literal scan and the in-job verification, then
broken variants of the example backend, each failing ZG-1 for its cause (the unmodified
example passing is in test_run_gates.py; a revision that raises: test_safety.py).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.catalog.clock_literals import Window, literal_in_window
from zerodrift.clock import SECOND_ZONE, ClockShift, every_field_differs, shift_seconds, verify
from zerodrift.runner import RunOptions, run

UTC = dt.timezone.utc


def _check(result, name_part):
    return next(c for c in result.checks if name_part in c.name)


@pytest.mark.parametrize("start", ["2024-02-29T23:59:59", "2026-12-31T10:00:00", "2027-01-31T00:00:00",
                                   "2030-06-30T13:37:00"])
def test_shift_makes_every_field_differ_at_any_instant(start):
    # every 7 h 13 min 17 s over ~a year, from awkward starting points (leap day, month and year ends)
    now = dt.datetime.fromisoformat(start).replace(tzinfo=UTC)
    for i in range(1200):
        moment = now + dt.timedelta(hours=7 * i, minutes=13 * i, seconds=17 * i)
        shifted = moment + dt.timedelta(seconds=shift_seconds(moment))
        assert every_field_differs(moment, shifted.astimezone(ZoneInfo(SECOND_ZONE))), moment
        assert every_field_differs(moment, shifted), moment
    # the check itself can fail: the same time of day on another date is not "every field differs"
    assert not every_field_differs(now, now + dt.timedelta(days=400))


def test_literal_scan_finds_values_of_the_window_only():
    start = dt.datetime(2026, 11, 30, 20, 15, 0, tzinfo=UTC)
    window = Window(start, start + dt.timedelta(seconds=40), "the run")
    found = lambda text: literal_in_window(text, window)  # noqa: E731
    assert found("'2026-11-30 20:15:12'::timestamp without time zone") == ["2026-11-30 20:15:12"]
    assert found("DEFAULT '2026-12-01'::date") == ["2026-12-01"]  # already the 1st east of UTC+3:45
    assert found("'2026-11-30 20:15:12.123+00'") == ["2026-11-30 20:15:12.123+00"]
    assert found("events_2026_11") == ["2026_11"] and found("p20261130") == ["20261130"]
    # outside the window: another day, another hour with an explicit offset, a month long gone
    assert found("'2026-12-03'::date") == [] and found("'2026-11-30 18:00:00+00'") == []
    assert found("events_2025_11, version 2026.11, 12026-11-30") == []


def _observed(time_s, zone, tz_env=None, **kw):
    local = dt.datetime.fromtimestamp(time_s, ZoneInfo(zone))
    return {"time": time_s, "local": local.isoformat(), "gmtoff": int(local.utcoffset().total_seconds()),
            "tz_env": tz_env or zone, "faketime_env": None, "faketime_loaded": True, "patched": [], **kw}


def test_verify_names_what_overrode_the_clock():
    real = 1_800_000_000.0
    shift = ClockShift(108_545_017, SECOND_ZONE)
    good = verify(shift, _observed(real + shift.offset_s, SECOND_ZONE, faketime_env="+108545017"), real - 1, real + 1)
    assert good.ok, good.detail
    tz = verify(shift, _observed(real + shift.offset_s, "UTC"), real - 1, real + 1)
    assert not tz.ok and "TZ is 'UTC'" in tz.detail and "env.py" in tz.detail and not tz.environment
    assert tz.zone_pinned  # only the zone: the target pins it
    patched = verify(shift, _observed(real + shift.offset_s, SECOND_ZONE, faketime_env="+108545017",
                                      patched=["datetime.datetime (freezegun.api)"]), real - 1, real + 1)
    assert not patched.ok and "freezegun" in patched.detail and not patched.environment and not patched.zone_pinned
    frozen_now = _observed(real + shift.offset_s, SECOND_ZONE, faketime_env="+108545017")
    frozen_now["local"] = "2020-01-01T00:00:00"
    frozen = verify(shift, frozen_now, real - 1, real + 1)
    assert not frozen.ok and "datetime.now() read 2020-01-01T00:00:00" in frozen.detail
    unloaded = verify(shift, _observed(real, SECOND_ZONE, faketime_loaded=False), real, real)
    assert not unloaded.ok and unloaded.environment and "libfaketime is not loaded" in unloaded.detail


# Revisions that take a value from the clock: the process's (second, day and month resolution)
# and the server's (current_date inside a DO block, which no process shift reaches).
CLOCK_REVISIONS = {
    "0013_now_default": """
        import datetime
        op.execute(f"ALTER TABLE tenants ADD COLUMN created_hint timestamp "
                   f"DEFAULT '{datetime.datetime.now():%Y-%m-%d %H:%M:%S}'")
    """,
    "0014_today_default": """
        import datetime
        op.execute(f"ALTER TABLE tenants ADD COLUMN valid_from date DEFAULT '{datetime.date.today().isoformat()}'")
    """,
    "0015_month_names": """
        import datetime
        month = datetime.date.today()
        op.execute(f"CREATE TABLE archive_{month:%Y_%m} (id int)")
        op.execute(f"COMMENT ON TABLE tenants IS 'tenants since {month:%B %Y}'")
    """,
    "0016_server_date": """
        op.execute("DO $$ BEGIN EXECUTE format('ALTER TABLE tenants ADD COLUMN server_day date DEFAULT %L', "
                   "current_date); END $$")
    """,
}


def test_values_from_the_migration_clock_fail_zg1_at_any_hour(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    previous = "0012_comments"
    for revision, body in CLOCK_REVISIONS.items():
        add_revision(backend, revision, previous, body)
        previous = revision
    commit_all(backend.parent, "clock-dependent revisions")
    zg1 = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"])).results[0]
    assert zg1.status.value == "FAIL", zg1.summary
    # positive control: the shift and the zone were in effect in the job after env.py
    assert _check(zg1, "clock and time zone differ").status.value == "PASS"
    diff = _check(zg1, "fresh catalog snapshots equal")
    assert diff.status.value == "FAIL"
    # every process-clock value differs between the databases: second, day (any hour) and month resolution
    # (the check's line counts the rows per drift class; the rows are in the gate's drift table)
    assert "drift row(s) (fresh → fresh_b): " in diff.detail and "1 name differs" in diff.detail, diff.detail
    table = [f"{row[2]} {row[3]}" for row in zg1.tables[0]["rows"]]
    for row in ("tenants.created_hint default", "tenants.valid_from default", "archive_", "tenants comment"):
        assert any(row in line for line in table), (row, table)
    fresh = _check(zg1, "migration's clock on fresh")
    assert fresh.status.value == "FAIL" and fresh.detail.startswith("value taken from the migration's clock")
    for obj in ("tenants.created_hint", "tenants.valid_from", "tenants.server_day", "archive_"):
        assert obj in fresh.detail, (obj, fresh.detail)
    assert "within the run's clock" in fresh.detail
    shifted = _check(zg1, "migration's clock on fresh_b")
    assert shifted.status.value == "FAIL"
    assert "tenants.created_hint" in shifted.detail and "within the shifted clock of fresh_b" in shifted.detail


# env.py pins the process's zone (os.environ["TZ"] + time.tzset()) and pins datetime.now() at Python level
ENV_PY_PINS = '''import datetime as _dt
import time

os.environ["TZ"] = "UTC"
time.tzset()


class _Pinned(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime(2020, 1, 1, tzinfo=tz)


_dt.datetime = _Pinned

config = context.config
'''


def test_env_py_that_resets_tz_or_pins_the_clock_does_not_pass_zg1(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "migrations" / "env.py", "config = context.config\n", ENV_PY_PINS)
    commit_all(backend.parent, "env.py pins the time zone and the clock")
    zg1 = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"])).results[0]
    assert zg1.status.value == "FAIL", zg1.summary
    clock = _check(zg1, "clock and time zone differ")
    assert clock.status.value == "FAIL"
    assert clock.detail.startswith("time independence not shown — fresh: the target replaced datetime.datetime")
    assert "fresh_b: TZ is 'UTC', not 'Pacific/Kiritimati'" in clock.detail and "env.py" in clock.detail
    assert "tm_gmtoff=+0 s" in clock.detail and "datetime.now() read 2020-01-01T00:00:00" in clock.detail
    # the schema alone would have passed: the override hid nothing here, but the claim is not made
    assert _check(zg1, "fresh catalog snapshots equal").status.value == "PASS"
    assert "TZ=Pacific/Kiritimati (observed" not in zg1.summary


def test_env_py_that_only_pins_its_time_zone_is_not_a_pass_of_the_zone_nor_a_fail(admin_url, tmp_path):
    """Pinning TZ in env.py is a deliberate setting of a healthy backend: ZG-1 passes on what it
    proved (the clock shift, equal schemas) and leaves the zone claim SKIPPED, naming the pin."""
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "migrations" / "env.py", "config = context.config\n",
         'import time\n\nos.environ["TZ"] = "UTC"\ntime.tzset()\n\nconfig = context.config\n')
    commit_all(backend.parent, "env.py pins the time zone")
    zg1 = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"])).results[0]
    clock = _check(zg1, "clock and time zone differ")
    assert clock.status.value == "SKIPPED", clock.detail
    assert "pins its own time zone" in clock.detail and "TZ is 'UTC', not 'Pacific/Kiritimati'" in clock.detail
    assert "the clock shift itself was in effect (clock +" in clock.detail and "(libfaketime)" in clock.detail
    assert zg1.status.value == "PASS", zg1.summary
    assert zg1.summary.endswith("1 skipped: clock and time zone differ between the two migrations"), zg1.summary


def test_each_clock_literal_says_how_it_matched():
    """A date or month matches by the calendar, a timestamp without a zone as some zone's local
    time, one with a zone as an instant: the message says which, so a reader can judge it."""
    from zerodrift.catalog.clock_literals import ClockLiteral

    def said(literal):
        return ClockLiteral("tables", "public.t", "default", literal, "the run's clock (…)").describe()

    assert "matched by its year and month" in said("2026_12")
    assert "matched by its calendar date" in said("2026-12-01")
    assert "(no time zone)" in said("2026-12-01 00:00:00") and "some zone" in said("2026-12-01 00:00:00")
    zoned = said("2026-12-01 09:40:53+00")
    assert zoned.endswith("'2026-12-01 09:40:53+00' is within the run's clock (…)")
