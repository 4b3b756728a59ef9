"""Git facts about the target's checkout (GitPython).

Collected once per run and shown in the ledger: commit and tree SHA, branch or
detached HEAD, remotes with credentials removed, dirty state (untracked files
count; zerodrift's own output folder does not), and whether the clone is shallow.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

import git

from zerodrift.errors import EnvironmentProblem

_CRED_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]+@", re.I)


@dataclass
class Provenance:
    """Facts about one checkout. ``repo_root`` is None outside a git repository."""

    repo_root: Path | None = None
    commit: str = ""
    tree: str = ""
    branch: str = ""  #: empty when HEAD is detached
    detached: bool = False
    remotes: dict[str, str] = field(default_factory=dict)
    dirty_paths: list[str] = field(default_factory=list)  #: porcelain lines: "XY path"
    ignored_output: list[str] = field(default_factory=list)  #: dirty paths skipped as zerodrift output
    shallow: bool = False
    subject: str = ""
    error: str = ""

    @property
    def short_sha(self) -> str:
        return self.commit[:12] if self.commit else "nocommit"

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_paths)


def strip_credentials(url: str) -> str:
    """Remove ``user:token@`` from a remote URL."""
    return _CRED_RE.sub(lambda m: m.group("scheme"), url)


def collect(target_dir: Path, *, exclude: list[Path] | None = None) -> Provenance:
    """Read git facts for ``target_dir``; paths under ``exclude`` never count as dirty.

    Never raises for a folder outside git: the result then has ``repo_root`` None and
    ``error`` set (ZG-0 reports it).
    """
    try:
        repo = git.Repo(target_dir, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return Provenance(error=f"{target_dir} is not inside a git repository")
    root = Path(repo.working_tree_dir or target_dir).resolve()
    prov = Provenance(repo_root=root)
    try:
        head = repo.head.commit
    except ValueError:
        prov.error = "the repository has no commit yet"
        return prov
    prov.commit = head.hexsha
    prov.tree = head.tree.hexsha
    prov.subject = head.summary if isinstance(head.summary, str) else head.summary.decode()
    prov.detached = repo.head.is_detached
    prov.branch = "" if prov.detached else repo.active_branch.name
    prov.remotes = {r.name: strip_credentials(next(iter(r.urls), "")) for r in repo.remotes}
    prov.shallow = (Path(repo.git_dir) / "shallow").exists()
    excluded = [p.resolve() for p in (exclude or [])]
    status = repo.git.status("--porcelain=v1", "--untracked-files=all", "-z")
    for entry in _porcelain_entries(status):
        path = (root / entry[3:]).resolve()
        # only *untracked* files under the output folder are zerodrift's; a changed tracked file always counts
        if entry.startswith("??") and any(path == ex or ex in path.parents for ex in excluded):
            prov.ignored_output.append(entry)
        else:
            prov.dirty_paths.append(entry)
    return prov


#: Options of the working-tree diff whose SHA-256 ZG-0 reports: binary-safe (``--binary``, full blob ids)
#: and independent of the user's git config (no colour, external diff or textconv).
DIFF_OPTIONS = ("--cached", "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv")


@dataclass
class WorkingTreeDiff:
    """The working tree's difference from HEAD: ``sha256`` of the patch bytes, their
    ``size`` in bytes, and the shell ``command`` that reproduces the digest."""

    sha256: str
    size: int
    paths: list[str]
    command: str


def working_tree_diff(repo_root: Path, dirty_paths: list[str]) -> WorkingTreeDiff:
    """SHA-256 of ``git diff HEAD`` of the working tree, untracked files included.

    ``dirty_paths`` are porcelain lines (``"XY path"``, from :func:`collect`). Git's own
    ``git diff HEAD`` leaves untracked files out, so the diff is taken against a
    *temporary copy* of the index into which every dirty path was added (``git add -A``):
    modified, staged, deleted and untracked files then all appear in
    ``git diff --cached --binary --full-index HEAD`` with their full content, binary files
    as git binary patches. The repository's own index is not touched. Raises
    ``git.GitCommandError`` when git fails.
    """
    import hashlib
    import shutil
    import tempfile

    repo = git.Repo(repo_root)
    paths = [entry[3:] for entry in dirty_paths]
    with tempfile.TemporaryDirectory(prefix="zerodrift-index-") as tmp:
        index = Path(tmp) / "index"
        own = Path(repo.git_dir) / "index"
        if own.is_file():
            shutil.copyfile(own, index)
        with repo.git.custom_environment(GIT_INDEX_FILE=str(index)):
            if paths:
                repo.git.add("-A", "--", *paths)
            patch = repo.git.diff(*DIFF_OPTIONS, "HEAD", stdout_as_string=False, strip_newline_in_stdout=False)
    quoted = " ".join(shlex_quote(p) for p in paths)
    command = ('i=$(mktemp) && cp "$(git rev-parse --git-path index)" "$i" && GIT_INDEX_FILE="$i" git add -A -- '
               + quoted + ' && GIT_INDEX_FILE="$i" git diff ' + " ".join(DIFF_OPTIONS) + ' HEAD | sha256sum')
    return WorkingTreeDiff(hashlib.sha256(patch).hexdigest(), len(patch), paths, command)


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _porcelain_entries(z_output: str) -> list[str]:
    parts = z_output.split("\0")
    entries: list[str] = []
    i = 0
    while i < len(parts):
        item = parts[i]
        if not item:
            i += 1
            continue
        entries.append(item)
        # renames/copies carry the original path as the next NUL-separated field
        i += 2 if item[:1] in ("R", "C") else 1
    return entries


def changed_paths(repo_root: Path, base_ref: str) -> tuple[str, list[str]]:
    """Paths changed between the merge base of ``base_ref`` and HEAD, plus the merge base SHA.

    Raises EnvironmentProblem when the clone is shallow or ``base_ref`` is unknown,
    with the git command that fetches what is missing.
    """
    repo = git.Repo(repo_root)
    shallow = (Path(repo.git_dir) / "shallow").exists()
    try:
        repo.commit(base_ref)
    except (git.BadName, ValueError) as exc:
        hint = "git fetch --unshallow" if shallow else f"git fetch origin {base_ref}"
        raise EnvironmentProblem(
            f"base ref {base_ref!r} is not in this clone; fetch it first ({hint}; in GitHub Actions use fetch-depth: 0)"
        ) from exc
    try:
        merge_base = repo.git.merge_base(base_ref, "HEAD").strip()
    except git.GitCommandError as exc:
        hint = "git fetch --unshallow (in GitHub Actions: fetch-depth: 0)" if shallow else "check that the base ref shares history with HEAD"
        raise EnvironmentProblem(f"no merge base between {base_ref!r} and HEAD: {hint}") from exc
    names = repo.git.diff("--name-only", "-z", merge_base, "HEAD").split("\0")
    return merge_base, sorted(n for n in names if n)


def path_allowed(path: str, globs: list[str]) -> bool:
    """True when ``path`` matches one of ``globs`` (fnmatch; ``dir/**`` matches anything below dir)."""
    for pattern in globs:
        if fnmatch.fnmatchcase(path, pattern):
            return True
        if pattern.endswith("/**") and (path + "/").startswith(pattern[:-2]):
            return True
    return False


def ci_context(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Facts about the CI run, when under GitHub Actions (``GITHUB_ACTIONS=true``).

    Returns the checked-out SHA (``GITHUB_SHA``, a merge commit for pull requests),
    the pull request's head SHA from the event file (``GITHUB_EVENT_PATH``), the
    ref and the run's URL; an empty dict elsewhere. Never raises.
    """
    import json
    import os

    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return {}
    facts = {"system": "GitHub Actions", "sha": env.get("GITHUB_SHA", ""), "ref": env.get("GITHUB_REF", ""),
             "event": env.get("GITHUB_EVENT_NAME", "")}
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        facts["run_url"] = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    try:
        with open(env["GITHUB_EVENT_PATH"], encoding="utf-8") as fh:
            event = json.load(fh)
        head = (event.get("pull_request") or {}).get("head") or {}
        if head.get("sha"):
            facts["pull_request_head_sha"] = head["sha"]
    except (KeyError, OSError, ValueError):
        pass
    return {k: v for k, v in facts.items() if v}


@dataclass
class ReleasedChange:
    """A revision file that existed at the release and differs at HEAD: ``status`` is git's
    name-status letter (M modified, D deleted, R renamed, T type changed), ``stat`` the
    diff stat (``+added -deleted`` lines, or ``binary``)."""

    path: str
    status: str
    stat: str
    new_path: str = ""


def release_ref(repo_root: Path, ref: str = "", pattern: str = "*") -> tuple[str, str] | None:
    """(name, SHA) of the release to compare with: ``ref`` when given, else the most recent
    tag reachable from HEAD whose name matches ``pattern`` (``git describe --tags --abbrev=0
    --match``). None when no such tag exists. Raises EnvironmentProblem with git's message
    when ``ref`` is unknown (in a shallow clone: how to fetch the tags)."""
    repo = git.Repo(repo_root)
    if ref:
        try:
            return ref, repo.commit(ref).hexsha
        except (git.BadName, ValueError, git.GitCommandError) as exc:
            shallow = (Path(repo.git_dir) / "shallow").exists()
            raise EnvironmentProblem(f"release_ref {ref!r} is not in this clone ({exc}); fetch it first "
                                     f"({'git fetch --unshallow --tags' if shallow else 'git fetch --tags'})") from exc
    try:
        name = repo.git.describe("--tags", "--abbrev=0", "--match", pattern, "HEAD").strip()
    except git.GitCommandError:
        return None  # git says no names found: this history has no release yet
    return name, repo.commit(name).hexsha


def released_changes(repo_root: Path, release_sha: str, folders: list[str]) -> list[ReleasedChange]:
    """Files under ``folders`` (repository-relative) that exist at ``release_sha`` and differ
    at HEAD (modified, deleted, renamed; files added since the release are not listed).
    Raises EnvironmentProblem with git's message when git fails."""
    repo = git.Repo(repo_root)
    try:
        status = repo.git.diff("--name-status", "-M", "--diff-filter=MDRT", release_sha, "HEAD", "--", *folders)
        numstat = repo.git.diff("--numstat", "-M", "--diff-filter=MDRT", release_sha, "HEAD", "--", *folders)
    except git.GitCommandError as exc:
        raise EnvironmentProblem(f"git diff against the release failed: {exc.stderr.strip() or exc}") from exc
    stats = {}
    for line in numstat.splitlines():
        added, deleted, path = line.split("\t", 2)
        path = re.sub(r"\{(.*?) => (.*?)\}", r"\1", path).split(" => ")[0].replace("//", "/")
        stats[path] = "binary" if added == "-" else f"+{added} -{deleted}"
    out = []
    for line in status.splitlines():
        parts = line.split("\t")
        letter, path = parts[0][0], parts[1]
        out.append(ReleasedChange(path, letter, stats.get(path, ""), parts[2] if len(parts) > 2 else ""))
    return out
