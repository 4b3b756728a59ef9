"""ZG-0 provenance and scope."""

from __future__ import annotations

import fnmatch
import os
from datetime import date
from pathlib import Path

import git
from pydantic import BaseModel, ConfigDict, Field

from zerodrift.context import GateContext
from zerodrift.errors import EnvironmentProblem
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import FAIL, OK, WARN, DoctorContext, InitContext
from zerodrift.provenance import changed_paths, path_allowed, release_ref, released_changes, working_tree_diff


class ReleasedFileWaiver(BaseModel):
    """Accepts a change to a released revision file until an expiry date (``[[gates.ZG-0.released_waivers]]``)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Repository-relative path of the revision file (a pattern, fnmatch rules).")
    reason: str = Field(min_length=1, description="Why the released file may differ (shown in the ledger).")
    expires: date = Field(description="Last day the waiver applies (YYYY-MM-DD).")


class ProvenanceConfig(GateConfig):
    base_ref: str = Field("", description="Git ref the change is compared with (e.g. origin/main); empty: no scope check.")
    allowed_paths: list[str] = Field(default_factory=list, description="Globs every changed path must match, e.g. ['backend/**'].")
    allow_dirty: bool = Field(False, description="Report a dirty tree without failing, for local trial runs only: ZG-0 is then "
                              "SKIPPED (never PASS), lists the modified paths and the SHA-256 of the working tree's diff "
                              "from HEAD, and says the proof is of the working tree, not of the commit.")
    release_ref: str = Field("", description="The release whose revision files must be unchanged at HEAD (tag, branch, SHA); empty: the most recent tag reachable from HEAD matching release_tags.")
    release_tags: str = Field("*", description="Pattern of release tag names (git describe --match, e.g. 'v[0-9]*').")
    released_waivers: list[ReleasedFileWaiver] = Field(default_factory=list, description="Changed released revision files accepted until an expiry date, each with a reason.")


class ProvenanceGate(Gate):
    """ZG-0: the proof is tied to one commit and the change stays in scope.

    PASS proves: the target is a git checkout at a commit, the working tree is clean
    (modified, staged and *untracked* files all count; zerodrift's own untracked
    output folder does not), so every other gate ran on exactly that commit's files;
    and, when ``base_ref`` and ``allowed_paths`` are configured, every path changed
    since the merge base matches one of the globs (e.g. "backend only": no path
    outside ``backend/**``). A dirty tree FAILs, naming the paths. With
    ``allow_dirty`` a dirty tree is SKIPPED instead — never PASS: the gates ran on the
    working tree, not on the commit; the gate lists the modified paths and the SHA-256
    of the working tree's diff from HEAD (binary-safe, untracked files included, see
    :func:`zerodrift.provenance.working_tree_diff`), which identifies what was proven.
    A shallow clone cannot give a merge base: the gate is ERROR with the fetch command
    to run.

    Released revision files are unchanged: every file in the migration folders
    (alembic.ini's version locations) that exists at the release — ``release_ref``, or
    by default the most recent tag reachable from HEAD matching ``release_tags`` — must
    be byte-identical at HEAD. A database that ran the release's revision never runs the
    edited one again (Alembic only applies revisions newer than ``alembic_version``), so
    an edit in place (a renamed constraint, a replaced trigger) is drift no fresh
    database shows. Each modified, deleted or renamed file is a FAIL naming it and its
    diff stat, unless a ``released_waivers`` entry accepts it until its expiry. No
    database is needed. A history without a matching tag SKIPs this check; a
    ``release_ref`` git cannot resolve is an ERROR with git's message.
    """

    id = "ZG-0"
    title = "Provenance and scope"
    config_model = ProvenanceConfig
    needs = ("git",)

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """The table with the scope check commented out: ``allowed_paths`` is the config's folder."""
        scope = ""
        if init.facts.git_root is not None:
            rel = Path(os.path.relpath(init.facts.config_dir, init.facts.git_root)).as_posix()
            scope = "**" if rel == "." else f"{rel}/**"
        init.table()
        init.comment("scope check (optional): every path changed since the merge base with base_ref must match allowed_paths.")
        init.commented_key("base_ref", "origin/main")
        init.commented_key("allowed_paths", [scope or "backend/**"])

    @classmethod
    def doctor(cls, doc: DoctorContext) -> None:
        """The git state this gate proves: a commit, a clean tree, a full clone when base_ref is set,
        and base_ref resolving."""
        prov = doc.provenance
        if prov is None or not prov.commit:
            doc.add(FAIL, "git", (prov.error if prov else "") or "no commit",
                    f"run zerodrift in a git checkout with at least one commit ({cls.id} ties the proof to it)")
            return
        where = prov.branch or "detached HEAD"
        if prov.dirty:
            shown = ", ".join(p[3:] for p in prov.dirty_paths[:5]) + (" …" if len(prov.dirty_paths) > 5 else "")
            doc.add(WARN, "git", f"{prov.short_sha} on {where}: {len(prov.dirty_paths)} dirty paths ({shown})",
                    f"commit or stash them before the run: {cls.id} FAILs on a dirty tree (untracked files count)")
        else:
            doc.add(OK, "git", f"{prov.short_sha} on {where}, clean tree")
        base_ref = doc.cfg.base_ref if doc.cfg is not None else ""
        if prov.shallow:
            doc.add(FAIL if base_ref else WARN, "git",
                    "shallow clone" + (f": {cls.id} cannot find the merge base with " + base_ref if base_ref else ""),
                    "git fetch --unshallow (in GitHub Actions: actions/checkout with fetch-depth: 0)")
        if base_ref:
            try:
                git.Repo(prov.repo_root).commit(base_ref)
                doc.add(OK, "git", f"base_ref {base_ref} resolves")
            except Exception:  # BadName, ValueError: the ref is unknown here
                doc.add(FAIL, "git", f"base_ref {base_ref} does not resolve in {prov.repo_root}",
                        f"fetch it (git fetch origin {base_ref.split('/', 1)[-1]}) or fix [gates.{cls.id}] base_ref")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: ProvenanceConfig = ctx.gate_config
        prov = ctx.provenance
        if not result.check("commit identified", bool(prov.commit),
                            f"HEAD {prov.commit}" if prov.commit else (prov.error or "no commit")):
            return
        status_text = "\n".join(prov.dirty_paths) or "(clean)"
        if prov.ignored_output:
            status_text += "\n# ignored as zerodrift output:\n" + "\n".join(prov.ignored_output)
        result.add_step(EvidenceStep(title="git status", command="git status --porcelain --untracked-files=all", exit_status=0,
                                     output=status_text))
        result.facts.update(commit=prov.commit, branch=prov.branch or "(detached)", dirty=prov.dirty)
        if prov.dirty and cfg.allow_dirty:
            self._dirty_allowed(prov, result)
        else:
            shown = ", ".join(p[3:] for p in prov.dirty_paths[:5]) + (" …" if len(prov.dirty_paths) > 5 else "")
            result.check("clean working tree", not prov.dirty,
                         "no modified, staged or untracked files" if not prov.dirty
                         else f"{len(prov.dirty_paths)} dirty paths: {shown} — commit or stash them (untracked files count)")
        if not prov.dirty:  # shown only when the gate PASSes; a dirty tree never does
            result.headline = f"clean tree at {prov.commit[:12]} ({prov.branch or 'detached HEAD'})"
        self._released_files(ctx, cfg, prov, result)
        if not (cfg.base_ref and cfg.allowed_paths):
            result.skip_check("changes within allowed paths", "base_ref and allowed_paths are not configured")
            return
        try:
            merge_base, paths = changed_paths(prov.repo_root, cfg.base_ref)
        except EnvironmentProblem as exc:
            result.fail_with_error(str(exc), environment=True)
            return
        result.add_step(EvidenceStep(title="changed paths", command=f"git diff --name-only $(git merge-base {cfg.base_ref} HEAD) HEAD", exit_status=0,
                                     output="\n".join(paths) or "(none)"))
        outside = [p for p in paths if not path_allowed(p, cfg.allowed_paths)]
        result.check("changes within allowed paths", not outside,
                     f"{len(paths)} paths changed since {merge_base[:12]}, all within {cfg.allowed_paths}" if not outside
                     else f"{len(outside)} of {len(paths)} changed paths are outside {cfg.allowed_paths}: {', '.join(outside[:10])}")

    @staticmethod
    def _released_files(ctx: GateContext, cfg: ProvenanceConfig, prov, result: GateResult) -> None:
        """The check "released revision files unchanged" (see the class docstring)."""
        from zerodrift.onboard.init import read_alembic_ini

        name = "released revision files unchanged"
        root = prov.repo_root.resolve()
        _, _, versions = read_alembic_ini(ctx.loaded.path(ctx.config.target.alembic_ini))
        folders = [v.resolve().relative_to(root).as_posix() for v in versions if v.resolve().is_relative_to(root)]
        if not folders:
            result.skip_check(name, "no migration folder inside the repository (alembic.ini's version locations)")
            return
        try:
            release = release_ref(root, cfg.release_ref, cfg.release_tags)
            if release is None:
                result.skip_check(name, f"no tag matching {cfg.release_tags!r} is reachable from HEAD: no release to "
                                        "compare with (set release_ref, or release_tags)")
                return
            changes = released_changes(root, release[1], folders)
        except EnvironmentProblem as exc:
            result.fail_with_error(str(exc), environment=True)
            return
        label, sha = release[0], release[1][:12]
        result.add_step(EvidenceStep(
            title=f"revision files changed since {label}",
            command=f"git diff --name-status -M --diff-filter=MDRT {label} HEAD -- {' '.join(folders)}", exit_status=0,
            output="\n".join(f"{c.status}\t{c.path}{' -> ' + c.new_path if c.new_path else ''}\t{c.stat}"
                             for c in changes) or "(none)"))
        today = date.today()
        failing, waived = [], []
        for change in changes:
            what = {"M": "modified", "D": "deleted", "R": f"renamed to {change.new_path}", "T": "type changed"}.get(
                change.status, change.status)
            text = f"{change.path} ({what}{', ' + change.stat if change.stat else ''})"
            waiver = next((w for w in cfg.released_waivers if fnmatch.fnmatchcase(change.path, w.path)), None)
            if waiver is not None and today <= waiver.expires:
                waived.append(f"{text}: waived until {waiver.expires} ({waiver.reason})")
            else:
                failing.append(text + (f" — its waiver expired on {waiver.expires}" if waiver is not None else ""))
        where = f"{label} ({sha})"
        if failing:
            result.check(name, False, f"{len(failing)} revision file(s) that existed at {where} changed since: "
                                      + "; ".join(failing) + " — a database at that release never runs the edited "
                                      "revision again: add a new revision instead (or waive it with a reason and expiry)"
                                      + (f"; also waived: {'; '.join(waived)}" if waived else ""))
        else:
            result.check(name, True, f"every revision file that existed at {where} is unchanged at HEAD"
                                     + (f" except waived: {'; '.join(waived)}" if waived else ""))

    @staticmethod
    def _dirty_allowed(prov, result: GateResult) -> None:
        """A dirty tree under ``allow_dirty``: SKIPPED, with the modified paths and the diff's digest."""
        try:
            diff = working_tree_diff(prov.repo_root, prov.dirty_paths)
        except git.GitCommandError as exc:
            result.fail_with_error(f"could not take the working tree's diff from HEAD: {exc}", environment=True)
            return
        result.add_step(EvidenceStep(
            title="working tree diff from HEAD (untracked files included)", command=diff.command + "  # at the repository root",
            output="\n".join(prov.dirty_paths) + f"\nsha256 {diff.sha256} of {diff.size} bytes of diff", exit_status=0))
        result.facts.update(working_tree_diff_sha256=diff.sha256, modified_paths=diff.paths)
        reason = (f"the proof is of the working tree, not of commit {prov.commit[:12]}: {len(diff.paths)} modified "
                  f"path(s) allowed by allow_dirty, git diff HEAD (untracked files included) sha256:{diff.sha256}")
        shown = ", ".join(diff.paths[:10]) + (" …" if len(diff.paths) > 10 else "")
        result.skip_check("clean working tree", f"{reason}; modified: {shown}")
        result.skip(reason)


@hookimpl
def zerodrift_gates():
    return [ProvenanceGate]
