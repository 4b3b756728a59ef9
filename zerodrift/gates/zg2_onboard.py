"""ZG-2's onboarding: the table ``zerodrift init`` proposes, and ``zerodrift doctor``'s checks of it.

The proposal is commented out (the revision a production database is at is the user's
to name), with the history's revisions, a seed file found in the tree and — when the
history starts with a squashed base — a ``from_ref`` path from the last release before
the squash. Doctor checks that ``from_revision`` is a revision of the history and that
the seed file exists.
"""

from __future__ import annotations

from zerodrift.onboard.hooks import FAIL, OK, DoctorContext, InitContext


def propose(gate_id: str, init: InitContext) -> None:
    """Write the commented ``[gates.<gate_id>]`` proposal (see the module docstring)."""
    facts = init.facts
    revisions = facts.revisions
    shown = ", ".join(revisions) if len(revisions) <= 20 else ", ".join(revisions[:4] + ["…"] + revisions[-12:])
    init.todo(f"{gate_id} (existing-database path) is SKIPPED until from_revision names the revision a production "
              f"database is at; revisions, oldest first: {shown or 'none found'}. Give seed data a real database would "
              "hold at that revision, and data checks that must hold after the upgrade.")
    init.table(commented=True)
    init.commented_key("from_revision", revisions[-2] if len(revisions) > 1 else "TODO")
    seed = facts.seed_files[0] if facts.seed_files else None
    init.commented_key("seed_sql_file", init.rel(seed) if seed else "seed.sql")
    init.table("data_checks", commented=True, array=True)
    init.commented_key("name", "no NULL left in a backfilled column")
    init.commented_key("sql", "SELECT count(*) FROM some_table WHERE new_column IS NULL")
    init.commented_key("expect", 0)
    base = facts.squashed_base
    if base is not None:
        release = (f"{base.release} ({base.release_note})" if base.release
                   else f"none found ({base.release_note}): name it")
        init.todo(f"the history starts with {base.revision} ({init.rel(base.file)}), which looks like a squashed base: "
                  f"{base.reason}. Databases created before the squash were built by the revisions it replaced; a "
                  f"from_ref path builds one with the last release before the squash and upgrades it with today's files. "
                  f"That release: {release}.")
        init.table("paths", commented=True, array=True)
        init.commented_key("from_ref", base.release or "TODO_last_release_before_the_squash")


def check(gate_id: str, doc: DoctorContext) -> None:
    """Doctor: the seed file exists and ``from_revision`` is a revision of the history (when set)."""
    from zerodrift.onboard.init import read_alembic_ini, revision_of

    cfg, loaded = doc.cfg, doc.loaded
    if cfg is None or not cfg.from_revision:
        return
    seed = cfg.seed_sql_file
    if seed and not loaded.path(seed).is_file():
        doc.add(FAIL, f"{gate_id} seed", f"seed_sql_file {loaded.path(seed)} does not exist",
                f"fix [gates.{gate_id}] seed_sql_file (relative to the config file)")
    ini = loaded.path(loaded.config.target.alembic_ini)
    if not ini.is_file():
        return
    _, _, versions = read_alembic_ini(ini)
    revisions = set()
    for folder in versions:
        for f in folder.glob("*.py"):
            try:
                revisions.add(revision_of(f.read_text(encoding="utf-8", errors="replace"))[0])
            except SyntaxError:
                continue
    rev = cfg.from_revision
    if revisions and rev not in revisions and not any(r.startswith(rev) for r in revisions):
        doc.add(FAIL, f"{gate_id} revision", f"from_revision {rev!r} is not a revision of this history",
                "name one of the revision ids in the migrations' `revision = \"…\"` lines")
    elif revisions:
        doc.add(OK, f"{gate_id} revision", f"{rev} is in the history" + (f"; seed {seed}" if seed else ""))
