"""Build throwaway copies of the example backend, intact or broken, in git repos."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import git

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "attribution_backend"


def make_backend(root: Path, *, commit: bool = True) -> Path:
    """Copy the example backend into ``root/backend`` inside a new git repository."""
    root.mkdir(parents=True, exist_ok=True)
    backend = root / "backend"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("__pycache__", "proofs"))
    (root / ".gitignore").write_text("__pycache__/\nproofs/\n")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "zerodrift tests")
        cw.set_value("user", "email", "tests@zerodrift.invalid")
    if commit:
        commit_all(root, "example backend")
    return backend


def commit_all(root: Path, message: str) -> str:
    repo = git.Repo(root)
    repo.git.add("-A")
    repo.index.commit(message)
    return repo.head.commit.hexsha


def add_revision(backend: Path, revision: str, down_revision: str | tuple[str, ...], upgrade_body: str) -> Path:
    """Write a migration file whose upgrade() runs ``upgrade_body`` (indented Python)."""
    body = textwrap.indent(textwrap.dedent(upgrade_body).strip("\n"), "    ")
    path = backend / "migrations" / "versions" / f"{revision}.py"
    path.write_text(
        f'"""Test revision {revision}."""\n'
        "from alembic import op\n"
        "import sqlalchemy as sa\n\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down_revision!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        f"{body}\n\n\n"
        "def downgrade() -> None:\n"
        "    pass\n"
    )
    return path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def latest_pack(out: Path) -> Path:
    """The proof pack folder the ``LATEST`` pointer in ``out`` names (the newest run's pack)."""
    return out / (out / "LATEST").read_text().strip()
