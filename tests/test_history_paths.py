"""ZG-2 upgrade paths built from real history (from_ref), drift classes, waivers (ZG-1 and the clock: test_clock.py)."""

from __future__ import annotations

import git

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.runner import RunOptions, run

REV = "migrations/versions/0003b_allocations.py"


def _edited_history(tmp_path, extra_toml: str = ""):
    backend = make_backend(tmp_path / "repo")
    repo = git.Repo(backend.parent)
    repo.create_tag("v1")
    # the old revision file is edited in place after the release: production keeps the old result
    edit(backend / REV, "CONSTRAINT ck_allocations_nonnegative", "CONSTRAINT ck_allocations_allocated_nonneg")
    edit(backend / REV, "model_version text NOT NULL DEFAULT 'v1'", "model_version text NOT NULL DEFAULT 'v2'")
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write('\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\n' + extra_toml)
    commit_all(backend.parent, "edit an old revision in place")
    return backend


def _zg2(backend, admin_url):
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-2"]))
    return report, next(r for r in report.results if r.gate_id == "ZG-2")


def _check(result, name):
    return next(c for c in result.checks if c.name == name)


def test_release_path_catches_an_old_revision_edited_in_place(admin_url, tmp_path):
    backend = _edited_history(tmp_path)
    report, zg2 = _zg2(backend, admin_url)
    assert zg2.status.value == "FAIL"
    today = _check(zg2, "[revision 0004_merge_branches] catalog equals fresh database")
    assert today.status.value == "PASS", today.detail  # today's files cannot see it
    release = _check(zg2, "[ref v1] catalog equals fresh database")
    assert release.status.value == "FAIL"
    # one line: the counts per class, most serious first, and the most serious row
    assert release.detail.startswith("3 drift row(s) (fresh → existing_2): 1 default changed, 1 name differs; "
                                     "first: default changed: columns public.attribution_allocations.model_version default")
    assert set(zg2.facts["fingerprints"]) == {"revision 0004_merge_branches", "ref v1"}
    # built to v1's head, the seed written for 0004 does not fit: not applied, and the skip says how to get it
    seed = _check(zg2, "[ref v1] seed applied")
    assert seed.status.value == "SKIPPED" and 'set revision = "0004_merge_branches" in the path' in seed.detail
    table = zg2.tables[0]
    assert table["summary"].startswith("3 diff row(s) (fresh → existing); counting: 1 default changed, 1 name differs")
    # the rename is one row (fresh name → existing name), not a missing + extra pair
    assert [(row[0], row[1], row[3]) for row in table["rows"]] == [
        ("ref v1", "default changed", "public.attribution_allocations.model_version"),
        ("ref v1", "name differs", "public.attribution_allocations/ck_allocations_allocated_nonneg → ck_allocations_nonnegative")]


WAIVERS = '''
[[gates.ZG-2.waivers]]
kind = "constraints"
object = "public.attribution_allocations/ck_allocations_*"
reason = "renamed in place in 0003b; production keeps the old name until the 2027 squash"
expires = "{expires}"

[[gates.ZG-2.waivers]]
kind = "columns"
object = "public.attribution_allocations.model_version"
attribute = "default"
reason = "default bumped in place; rows always set it explicitly"
expires = "{expires}"
'''

STALE = '''
[[gates.ZG-2.waivers]]
kind = "indexes"
object = "public.no_such_index*"
reason = "left over from an old fix"
expires = "2099-01-01"
'''


def test_waivers_accept_known_drift_until_they_expire(admin_url, tmp_path):
    backend = _edited_history(tmp_path / "a", WAIVERS.format(expires="2099-12-31") + STALE)
    _, zg2 = _zg2(backend, admin_url)
    assert zg2.status.value == "PASS", zg2.summary
    release = _check(zg2, "[ref v1] catalog equals fresh database")
    assert "all waived" in release.detail
    statuses = {row[7].split(":")[0] for row in zg2.tables[0]["rows"]}
    assert statuses == {"WAIVED"}
    stale = _check(zg2, "waiver indexes public.no_such_index*")
    assert stale.status.value == "SKIPPED" and "stale" in stale.detail

    backend = _edited_history(tmp_path / "b", WAIVERS.format(expires="2020-01-31"))
    _, zg2 = _zg2(backend, admin_url)
    assert zg2.status.value == "FAIL"
    assert "3 drift row(s) (fresh → existing_2), 3 with an expired waiver: " in _check(
        zg2, "[ref v1] catalog equals fresh database").detail
    assert {row[7].split(":")[0] for row in zg2.tables[0]["rows"]} == {"EXPIRED"}


def test_missing_ref_is_an_environment_error_saying_how_to_fetch(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-2"], from_refs=["v9.9"]))
    zg2 = next(r for r in report.results if r.gate_id == "ZG-2")
    assert zg2.status.value == "ERROR" and zg2.environment_error
    assert "v9.9" in zg2.error and "git fetch" in zg2.error
    assert report.exit_code == 3


def test_git_failures_are_environment_errors_with_gits_message(admin_url, tmp_path):
    """A commit a shallow clone lacks and a worktree git cannot create: exit 3, git's words, no traceback."""
    origin = make_backend(tmp_path / "origin")
    first = git.Repo(origin.parent).head.commit.hexsha
    edit(origin / "seed.sql", "ZG Existing Tenant", "ZG Tenant")
    commit_all(origin.parent, "second commit")
    git.Repo.clone_from(f"file://{origin.parent}", tmp_path / "clone", depth=1)
    (tmp_path / "clone" / ".git" / "worktrees").write_text("not a folder: git cannot add a worktree here\n")
    report = run(RunOptions(target=tmp_path / "clone" / "backend", admin_url=admin_url, gates=["ZG-2"],
                            from_refs=[first, "HEAD"]))
    zg2 = next(r for r in report.results if r.gate_id == "ZG-2")
    assert zg2.status.value == "ERROR" and zg2.environment_error and report.exit_code == 3
    assert "Traceback" not in zg2.error, zg2.error
    missing, worktree = zg2.error.split("; [ref HEAD] ")
    assert missing.startswith(f"[ref {first}] ref {first!r} is not in this clone (git rev-parse --verify ")
    assert "the clone is shallow: git fetch --unshallow --tags" in missing
    assert worktree.startswith("git could not check out 'HEAD'")
    assert "fatal: could not create leading directories of '.git/worktrees/" in worktree  # git's own message
    # the healthy path of the same run still ran to the end
    assert _check(zg2, "[revision 0004_merge_branches] catalog equals fresh database").status.value == "PASS"


def _tagged(tmp_path, paths_toml: str):
    """The example at tag v1, ``paths_toml`` appended to its config after the tag."""
    backend = make_backend(tmp_path / "repo")
    git.Repo(backend.parent).create_tag("v1")
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write(paths_toml)
    commit_all(backend.parent, "release paths")
    return backend


def test_release_path_up_to_a_named_revision_takes_the_gates_seed_and_checks(admin_url, tmp_path):
    backend = _tagged(tmp_path, '\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\nrevision = "0004_merge_branches"\n'
                                '\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\nname = "typo"\nrevision = "0099_not_released"\n')
    _, zg2 = _zg2(backend, admin_url)
    build = _check(zg2, "[ref v1] build with the migrations of v1 up to 0004_merge_branches")
    assert build.status.value == "PASS" and "at 0004_merge_branches (its heads: 0012_comments)" in build.detail
    assert _check(zg2, "[ref v1] seed applied").status.value == "PASS"
    for name in ("idempotency_key backfilled", "event_timestamp backfilled", "seeded event survived the upgrade"):
        assert _check(zg2, f"[ref v1] data: {name}").status.value == "PASS"
    assert _check(zg2, "[ref v1] catalog equals fresh database").status.value == "PASS"
    # a revision the release does not have: the configuration is wrong (ERROR), named with the fix
    assert zg2.status.value == "ERROR" and not zg2.environment_error
    assert zg2.error == ("[typo] [[gates.ZG-2.paths]] revision '0099_not_released' is not in the history of v1 "
                         "(its heads: 0012_comments): name a revision of that release (git checkout v1 && alembic history)")

    # broken: today's 0005 lost its backfill; only a seeded database shows it, on the release path too
    backend = _tagged(tmp_path / "b", '\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\nrevision = "0004_merge_branches"\n')
    edit(backend / "migrations/versions/0005_idempotency_key.py", "SET idempotency_key = tenant_id::text || ':id:' || id::text",
         "SET idempotency_key = NULL")
    commit_all(backend.parent, "0005 loses its backfill")
    _, zg2 = _zg2(backend, admin_url)
    upgrade = _check(zg2, "[ref v1] upgrade to head")
    assert zg2.status.value == "FAIL" and upgrade.status.value == "FAIL"
    assert "0005_idempotency_key" in upgrade.detail and "idempotency_key" in upgrade.detail and "null" in upgrade.detail


LEGACY_ENV_PY = '''
import importlib.util, os
import legacy_dep  # the release's own dependency, installed only in its interpreter
assert os.environ.get("LEGACY_MODE") == "on", "v1's env.py needs LEGACY_MODE=on"
'''


def test_release_path_builds_with_its_own_interpreter_and_environment(admin_url, tmp_path):
    """v1 needs a package (legacy_dep) and a variable today's interpreter must not have: the path's
    python and env build the old database, today's upgrade runs with the normal interpreter."""
    import sys

    backend = make_backend(tmp_path / "repo")
    env_py = backend / "migrations" / "env.py"
    today = env_py.read_text()
    env_py.write_text(LEGACY_ENV_PY + today)
    commit_all(backend.parent, "v1 needs legacy_dep")
    git.Repo(backend.parent).create_tag("v1")
    env_py.write_text('import importlib.util\nassert importlib.util.find_spec("legacy_dep") is None, '
                      '"legacy_dep leaked into today\'s interpreter"\n' + today)
    site = tmp_path / "old-venv" / "site"
    site.mkdir(parents=True)
    (site / "legacy_dep.py").write_text("VERSION = 1\n")
    old_python = tmp_path / "old-venv" / "python"  # stands for /path/to/old/venv/bin/python
    old_python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} "$@"\n')
    old_python.chmod(0o755)
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write(f'\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\npython = "{old_python}"\nenv = {{ LEGACY_MODE = "on" }}\n'
                 '\n[[gates.ZG-2.paths]]\nname = "no env"\nfrom_ref = "v1"\n'
                 f'python = "{old_python}"\n'
                 '\n[[gates.ZG-2.paths]]\nname = "no interpreter"\nfrom_ref = "v1"\nenv = { LEGACY_MODE = "on" }\n'
                 '\n[[gates.ZG-2.paths]]\nname = "gone"\nfrom_ref = "v1"\npython = "old-venv/bin/python"\n')
    commit_all(backend.parent, "today's env.py; release paths")
    _, zg2 = _zg2(backend, admin_url)
    assert _check(zg2, "[ref v1] build with the migrations of v1").status.value == "PASS"
    assert _check(zg2, "[ref v1] upgrade to head").status.value == "PASS"  # today's interpreter: no legacy_dep
    assert _check(zg2, "[ref v1] catalog equals fresh database").status.value == "PASS"
    no_env = _check(zg2, "[no env] build with the migrations of v1")
    assert no_env.status.value == "FAIL" and "v1's env.py needs LEGACY_MODE=on" in no_env.detail
    no_python = _check(zg2, "[no interpreter] build with the migrations of v1")
    assert no_python.status.value == "FAIL" and "No module named 'legacy_dep'" in no_python.detail
    assert "sparse" not in no_python.detail  # the module is nowhere in the tree: no checkout hint
    assert zg2.status.value == "ERROR" and zg2.environment_error
    assert zg2.error.startswith(f"[gone] target interpreter '{backend / 'old-venv/bin/python'}' not found or not "
                                "executable (python of [[gates.ZG-2.paths]] gone)")


def test_release_worktree_holds_only_the_migrations_folders(admin_url, tmp_path):
    """Sparse by default: a folder the migrations do not read is not checked out; env.py reaching
    outside the known folders fails naming what was left out and the fix, and sparse = false heals it."""
    from zerodrift.worktree import migration_folders

    backend = make_backend(tmp_path / "repo")
    root = backend.parent
    (root / "frontend").mkdir()
    (root / "frontend" / "bundle.js").write_text("// not needed by the migrations\n")
    (root / "shared").mkdir()
    (root / "shared" / "legacy_names.py").write_text("TENANTS = 'tenants'\n")
    env_py = backend / "migrations" / "env.py"
    today = env_py.read_text()
    env_py.write_text("import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parents[2] / 'shared'))\n"
                      "import legacy_names  # outside alembic.ini's folder and target.pythonpath\n" + today)
    commit_all(root, "v1 reads shared/")
    git.Repo(root).create_tag("v1")
    env_py.write_text(today)
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write('\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\n\n[[gates.ZG-2.paths]]\nname = "whole tree"\n'
                 'from_ref = "v1"\nsparse = false\n')
    commit_all(root, "release paths")
    assert migration_folders(root, backend / "alembic.ini", [backend]) == ["backend"]
    assert migration_folders(root, backend / "alembic.ini", [root / "shared"]) == ["backend", "shared"]
    assert migration_folders(root, backend / "alembic.ini", [root]) == ["."]
    _, zg2 = _zg2(backend, admin_url)
    sparse = _check(zg2, "[ref v1] build with the migrations of v1")
    assert sparse.status.value == "FAIL" and "No module named 'legacy_names'" in sparse.detail
    assert ("v1 holds shared/legacy_names.py outside the sparse worktree, which held only backend" in sparse.detail
            and "add its folder to target.pythonpath, or set sparse = false in this path" in sparse.detail)
    checkout = next(s for s in zg2.evidence if s.title == "[ref v1] check out v1")
    assert checkout.output.endswith("checked out: backend") and "--no-checkout" in checkout.command
    assert _check(zg2, "[whole tree] build with the migrations of v1").status.value == "PASS"
    assert _check(zg2, "[whole tree] catalog equals fresh database").status.value == "PASS"
    assert next(s for s in zg2.evidence if s.title == "[whole tree] check out v1").output.endswith("checked out: .")
