"""ZG-0: revision files that existed at the last release are unchanged at HEAD (no database needed)."""

from __future__ import annotations

from datetime import date, timedelta

import git

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.runner import RunOptions, run

RELEASED = "migrations/versions/0005_idempotency_key.py"


def _zg0(backend, admin_url):
    commit_all(backend.parent, "variant")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-0"]))
    return next(r for r in report.results if r.gate_id == "ZG-0")


def _check(result):
    return next(c for c in result.checks if c.name == "released revision files unchanged")


def test_released_revision_edited_in_place_fails_zg0_unless_waived(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    repo = git.Repo(tmp_path / "repo")
    repo.create_tag("v1.0.0")
    repo.create_tag("nightly-1")  # newer, but not a release tag under release_tags
    # a new revision after the release is how a release moves on: not a finding
    add_revision(backend, "0013_more", "0012_comments", "op.execute('CREATE TABLE more_things (id int)')")
    edit(backend / "zerodrift.toml", "[gates.ZG-0]\n", "[gates.ZG-0]\nrelease_tags = \"v[0-9]*\"\n")
    zg0 = _zg0(backend, admin_url)
    assert zg0.status.value == "PASS", (zg0.summary, zg0.error)
    assert _check(zg0).detail.startswith("every revision file that existed at v1.0.0 (")

    # the released revision is edited in place (a renamed constraint): FAIL naming the file and its diff stat
    edit(backend / "migrations" / "versions" / "0005_idempotency_key.py",
         "uq_attribution_events_tenant_idempotency", "uq_events_tenant_idempotency")
    zg0 = _zg0(backend, admin_url)
    assert zg0.status.value == "FAIL"
    detail = _check(zg0).detail
    assert f"1 revision file(s) that existed at v1.0.0" in detail and f"{RELEASED} (modified, +" in detail, detail
    assert "0013_more" not in detail

    # waived with a reason until a date: PASS that says so; once expired, FAIL again
    tomorrow, yesterday = date.today() + timedelta(days=1), date.today() - timedelta(days=1)
    config = backend / "zerodrift.toml"
    original = config.read_text()
    for expires, status in ((tomorrow, "PASS"), (yesterday, "FAIL")):
        config.write_text(original.replace("release_tags = \"v[0-9]*\"\n", "release_tags = \"v[0-9]*\"\n"
                                           "released_waivers = [{ path = \"*/0005_*.py\", reason = \"constraint name "
                                           f"fixed before any deploy\", expires = {expires.isoformat()} }}]\n"))
        zg0 = _zg0(backend, admin_url)
        assert zg0.status.value == status, (expires, zg0.summary)
        detail = _check(zg0).detail
        assert ("waived until" in detail) if status == "PASS" else (f"its waiver expired on {yesterday}" in detail), detail

    # a release_ref git cannot resolve is an environment error with git's message
    config.write_text(original.replace("release_tags = \"v[0-9]*\"\n", "release_ref = \"v9.9.9\"\n"))
    zg0 = _zg0(backend, admin_url)
    assert zg0.status.value == "ERROR" and "release_ref 'v9.9.9' is not in this clone" in zg0.error, zg0.error
