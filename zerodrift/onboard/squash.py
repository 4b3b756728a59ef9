"""Is the migration history's first revision a squashed base? (``zerodrift init``, ZG-2)

When a project folds its old revisions into one new base revision ("squashing"), the
databases created before the squash were built by the revisions it replaced, which
today's files no longer hold: only a ZG-2 ``from_ref`` path (the last release before the
squash, built with its own files, then upgraded with today's) proves those databases
end like a fresh one. ``init`` proposes that path, commented, with a TODO.

The rule, applied to every base revision (``down_revision = None``):

* **named as a squash**: its revision id, file name or docstring says ``squash``,
  ``baseline`` or ``consolidate`` — the words projects use for it; or
* **creates many tables**: its ``upgrade()`` creates at least :data:`MANY_TABLES` tables
  (``op.create_table`` calls and ``CREATE TABLE`` statements). A name like ``initial``
  alone says nothing (most first revisions are called that), so it counts only with the
  table count.

The release proposed is the most recent tag reachable from the parent of the commit that
added the base revision's file (``git describe --tags --abbrev=0 <commit>^``): the last
release whose databases were built before the squash. Without one the key is a TODO.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import git

#: a base revision creating at least this many tables is taken as a squash of an older history
MANY_TABLES = 10
_SQUASH_WORD = re.compile(r"squash|baseline|consolidat", re.I)
_CREATE_TABLE = re.compile(r"\bCREATE\s+(?:(?:GLOBAL\s+|LOCAL\s+)?(?:TEMP|TEMPORARY)\s+|UNLOGGED\s+)?TABLE\b", re.I)


@dataclass
class SquashedBase:
    """A base revision taken for a squash: ``reason`` says which part of the rule matched;
    ``release`` is the last tag before the file was added ("" when none was found) and
    ``release_note`` how it was found or why not."""

    revision: str
    file: Path
    tables: int
    reason: str
    release: str = ""
    release_note: str = ""


def tables_created(source: str, sql: list[str]) -> int:
    """Tables a revision's source creates: ``create_table(...)`` calls in its Python and
    ``CREATE TABLE`` statements in ``sql`` (the SQL strings it executes)."""
    try:
        calls = sum(1 for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                    and (getattr(node.func, "attr", "") or getattr(node.func, "id", "")) == "create_table")
    except SyntaxError:
        calls = 0
    return calls + sum(len(_CREATE_TABLE.findall(text)) for text in sql)


def squash_reason(revision: str, file: Path, source: str, tables: int) -> str:
    """Why this base revision is taken for a squash, or "" when the rule does not match."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        doc = ""
    for where, text in (("revision id", revision), ("file name", file.name), ("docstring", doc.split("\n\n")[0])):
        word = _SQUASH_WORD.search(text)
        if word:
            return f"its {where} says {word.group(0).lower()!r}"
    if tables >= MANY_TABLES:
        return f"its upgrade creates {tables} tables (at least {MANY_TABLES}: a history folded into one revision)"
    return ""


def release_before(git_root: Path | None, file: Path) -> tuple[str, str]:
    """(tag, note): the most recent tag reachable from the parent of the commit that added
    ``file``; ("", why not) outside git, for an uncommitted file, or without such a tag.
    Never raises."""
    if git_root is None:
        return "", "the folder is not in a git repository"
    try:
        repo = git.Repo(git_root)
        added = repo.git.log("--diff-filter=A", "--format=%H", "--", str(file)).split()
        if not added:
            return "", f"{file.name} is not committed yet"
        commit = added[-1]
        if not repo.commit(commit).parents:
            return "", f"{file.name} was added by the repository's first commit: no release came before it"
        tag = repo.git.describe("--tags", "--abbrev=0", f"{commit}^")
        return tag.strip(), f"the last tag before commit {commit[:12]}, which added {file.name}"
    except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return "", f"no tag precedes the commit that added {file.name}"
