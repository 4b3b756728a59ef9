"""ZG-0 provenance and scope."""

from __future__ import annotations

from pydantic import Field

from zerodrift.errors import EnvironmentProblem
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl
from zerodrift.provenance import changed_paths, path_allowed


class ProvenanceConfig(GateConfig):
    base_ref: str = Field("", description="Git ref the change is compared with (e.g. origin/main); empty: no scope check.")
    allowed_paths: list[str] = Field(default_factory=list, description="Globs every changed path must match, e.g. ['backend/**'].")
    allow_dirty: bool = Field(False, description="Report a dirty tree without failing (for local trial runs only).")


class ProvenanceGate(Gate):
    """ZG-0: the proof is tied to one commit and the change stays in scope.

    Checks that the target is a git checkout at a commit, that the working tree is
    clean (modified, staged and *untracked* files all count; zerodrift's own output
    folder does not), and, when ``base_ref`` and ``allowed_paths`` are configured,
    that every path changed since the merge base matches one of the globs (e.g.
    "backend only": no path outside ``backend/**``). A shallow clone cannot give a merge base: the gate is
    ERROR with the fetch command to run.
    """

    id = "ZG-0"
    title = "Provenance and scope"
    config_model = ProvenanceConfig
    needs = ("git",)

    def run(self, ctx, result: GateResult) -> None:
        cfg: ProvenanceConfig = ctx.gate_config
        prov = ctx.provenance
        if not result.check("commit identified", bool(prov.commit),
                            f"HEAD {prov.commit}" if prov.commit else (prov.error or "no commit")):
            return
        status_text = "\n".join(prov.dirty_paths) or "(clean)"
        if prov.ignored_output:
            status_text += "\n# ignored as zerodrift output:\n" + "\n".join(prov.ignored_output)
        result.add_step(EvidenceStep(title="git status", command="git status --porcelain --untracked-files=all",
                                     output=status_text))
        result.facts.update(commit=prov.commit, branch=prov.branch or "(detached)", dirty=prov.dirty)
        if prov.dirty and cfg.allow_dirty:
            result.skip_check("clean working tree", f"{len(prov.dirty_paths)} dirty paths, allowed by allow_dirty")
        else:
            shown = ", ".join(p[3:] for p in prov.dirty_paths[:5]) + (" …" if len(prov.dirty_paths) > 5 else "")
            result.check("clean working tree", not prov.dirty,
                         "no modified, staged or untracked files" if not prov.dirty
                         else f"{len(prov.dirty_paths)} dirty paths: {shown} — commit or stash them (untracked files count)")
        result.headline = (f"{'DIRTY tree (allow_dirty)' if prov.dirty else 'clean tree'} at {prov.commit[:12]} "
                           f"({prov.branch or 'detached HEAD'})")
        if not (cfg.base_ref and cfg.allowed_paths):
            result.skip_check("changes within allowed paths", "base_ref and allowed_paths are not configured")
            return
        try:
            merge_base, paths = changed_paths(prov.repo_root, cfg.base_ref)
        except EnvironmentProblem as exc:
            result.fail_with_error(str(exc), environment=True)
            return
        result.add_step(EvidenceStep(title="changed paths", command=f"git diff --name-only $(git merge-base {cfg.base_ref} HEAD) HEAD",
                                     output="\n".join(paths) or "(none)"))
        outside = [p for p in paths if not path_allowed(p, cfg.allowed_paths)]
        result.check("changes within allowed paths", not outside,
                     f"{len(paths)} paths changed since {merge_base[:12]}, all within {cfg.allowed_paths}" if not outside
                     else f"{len(outside)} of {len(paths)} changed paths are outside {cfg.allowed_paths}: {', '.join(outside[:10])}")


@hookimpl
def zerodrift_gates():
    return [ProvenanceGate]
