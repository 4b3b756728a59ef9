"""An older release's files in a temporary git worktree (ZG-2's ``from_ref`` paths).

:class:`RefWorktree` checks a git ref out, detached, in a temporary linked worktree
(``git worktree add``) and removes it afterwards; the user's checkout, index and
branches are not touched. With ``folders`` the worktree is *sparse*: it is added
with ``--no-checkout`` and only those folders are checked out of the ref's tree
(``git checkout <sha> -- <folders>``). ``git sparse-checkout`` is not used on
purpose: in a linked worktree it turns on ``extensions.worktreeConfig`` in the
repository's shared config, a lasting change to the user's repository.

Every git failure (unknown ref, a commit a shallow clone lacks, a worktree git
cannot create) is an :class:`~zerodrift.errors.EnvironmentProblem` (exit 3) carrying
git's own message and the command that fixes it.
"""

from __future__ import annotations

import configparser
import shutil
import tempfile
from pathlib import Path

import git

from zerodrift.errors import EnvironmentProblem


def _git_message(exc: Exception) -> str:
    """git's own words from a GitPython error (stderr without GitPython's framing)."""
    if isinstance(exc, git.GitCommandError):
        text = (exc.stderr or "").strip()
        if text.startswith("stderr:"):
            text = text[len("stderr:"):].strip()
        text = text.strip("'\" \n")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("fatal:", "error:"))]  # not git's progress lines
        return " ".join(errors or lines) or str(exc)
    return str(exc)


def _fetch_hint(ref: str, shallow: bool) -> str:
    if shallow:
        return "the clone is shallow: git fetch --unshallow --tags (GitHub Actions: fetch-depth: 0)"
    return f"fetch it: git fetch origin {ref} (tags: git fetch --tags)"


class RefWorktree:
    """Context manager: ``ref`` checked out (detached) in a temporary worktree of the
    repository at ``repo_root``; entering returns ``(folder, commit SHA)``.

    ``folders`` (repository-relative POSIX paths) makes the checkout sparse; None or a
    list holding ``"."`` checks out the whole tree. Folders absent at the ref are left
    out (the caller reports what is then missing). :attr:`checked_out` lists what was
    checked out (``["."]`` for the whole tree) and :attr:`command` the git commands, for
    the evidence. Raises EnvironmentProblem when git fails, with git's message.
    """

    def __init__(self, repo_root: Path, ref: str, *, shallow: bool = False, folders: list[str] | None = None) -> None:
        self.repo_root, self.ref, self.shallow = repo_root, ref, shallow
        self.folders = None if folders is None or "." in folders else sorted(set(folders))
        self.checked_out: list[str] = []
        self.command = ""
        self.path: Path | None = None

    def __enter__(self) -> tuple[Path, str]:
        try:
            self.repo = git.Repo(self.repo_root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise EnvironmentProblem(f"{self.repo_root} is not a git repository ({exc}): "
                                     f"from_ref {self.ref!r} needs the target's git history") from exc
        try:
            sha = self._git("rev-parse", "--verify", "--end-of-options", f"{self.ref}^{{commit}}").strip()
        except git.GitCommandError as exc:
            raise EnvironmentProblem(f"ref {self.ref!r} is not in this clone (git rev-parse --verify "
                                     f"{self.ref}^{{commit}}: {_git_message(exc)}); "
                                     f"{_fetch_hint(self.ref, self.shallow)}") from exc
        self.path = Path(tempfile.mkdtemp(prefix="zerodrift-ref-"))
        try:
            if self.folders is None:
                self._git("worktree", "add", "--detach", str(self.path), sha)
                self.checked_out = ["."]
                self.command = f"git worktree add --detach <tmp> {sha}"
            else:
                self._git("worktree", "add", "--no-checkout", "--detach", str(self.path), sha)
                present = self._present(sha, self.folders)
                if present:
                    git.Repo(self.path).git.checkout(sha, "--", *present)
                self.checked_out = present
                self.command = (f"git worktree add --no-checkout --detach <tmp> {sha} && "
                                f"git -C <tmp> checkout {sha} -- {' '.join(present)}")
        except git.GitCommandError as exc:
            self.__exit__()
            raise EnvironmentProblem(f"git could not check out {self.ref!r} ({sha[:12]}) in a temporary worktree: "
                                     f"{_git_message(exc)} — fix the repository so that "
                                     f"`git worktree add --detach <folder> {self.ref}` works there") from exc
        return self.path, sha

    def _git(self, *args: str) -> str:
        return self.repo.git.execute(["git", *args])

    def _present(self, sha: str, folders: list[str]) -> list[str]:
        """The entries of ``folders`` that exist in ``sha``'s tree."""
        listed = self.repo.git.ls_tree("--name-only", sha, "--", *folders).splitlines()
        return [f for f in folders if any(line == f or line.startswith(f + "/") for line in listed)]

    def left_out(self, module: str) -> list[str]:
        """Paths of the ref's tree, outside what a sparse checkout holds, that would provide
        the top-level module ``module`` (``module.py`` or a ``module/`` folder); empty for a
        full checkout."""
        if self.checked_out == ["."] or self.path is None or not module:
            return []
        names = self.repo.git.ls_tree("-r", "--name-only", self._sha(), "--").splitlines()
        found = set()
        for name in names:
            if any(name == f or name.startswith(f + "/") for f in self.checked_out):
                continue
            parts = name.split("/")
            for i, part in enumerate(parts):
                if part == module and i < len(parts) - 1 or part == module + ".py":
                    found.add("/".join(parts[:i + 1]))
        return sorted(found)

    def _sha(self) -> str:
        return git.Repo(self.path).head.commit.hexsha

    def __exit__(self, *exc) -> None:
        if self.path is None:
            return
        try:
            self.repo.git.worktree("remove", "--force", str(self.path))
        except git.GitCommandError:
            shutil.rmtree(self.path, ignore_errors=True)
            try:
                self.repo.git.worktree("prune")
            except git.GitCommandError:
                pass
        shutil.rmtree(self.path, ignore_errors=True)
        self.path = None


def migration_folders(repo_root: Path, alembic_ini: Path, pythonpath: list[Path]) -> list[str]:
    """Repository-relative folders an alembic run of the target reads: alembic.ini's folder
    (alembic's working folder, on ``PYTHONPATH``), its ``script_location``, ``version_locations``
    (as :func:`zerodrift.onboard.init.read_alembic_ini` reads them, without running env.py: a
    folder env.py chooses at run time is found only below one of these) and
    ``prepend_sys_path`` entries (Alembic resolves both against that folder, ``%(here)s``
    being that folder too) and the ``target.pythonpath`` entries (absolute paths). A path
    outside the repository or at its root gives ``["."]``: the whole tree."""
    root = repo_root.resolve()
    here = alembic_ini.parent.resolve()
    wanted = [here, *(p.resolve() for p in pythonpath)]
    parser = configparser.ConfigParser(defaults={"here": str(here)})
    try:
        parser.read(alembic_ini, encoding="utf-8")
        section = parser["alembic"] if parser.has_section("alembic") else {}
    except (configparser.Error, OSError):
        section = {}
    from zerodrift.onboard.init import read_alembic_ini

    # script_location and version_locations as alembic.ini gives them (package:folder found in the tree)
    _raw, script, versions = read_alembic_ini(alembic_ini)
    wanted.extend(p.resolve() for p in ([script] if script is not None else []) + versions)
    for entry in (section.get("prepend_sys_path", "") if section else "").replace(",", " ").split():
        wanted.append((here / entry).resolve())
    out: list[str] = []
    for path in wanted:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            return ["."]
        if rel in ("", "."):
            return ["."]
        out.append(rel)
    # a folder inside another listed folder adds nothing
    return sorted(f for f in set(out) if not any(f.startswith(o + "/") for o in out if o != f))
