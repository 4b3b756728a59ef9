"""The target's Alembic script directory, as its own alembic run resolves it.

The alembic job (``zerodrift/probes/alembic_job.py``) resolves the script directory in
the target's interpreter by running ``env.py`` the way ``alembic current`` does, and
answers what it found (``"script"``: ``script_location`` as configured and resolved,
version locations as configured and as ``env.py`` left them, revisions and heads per
location). This module turns that answer into what zerodrift says about it:

* :func:`no_revisions_error`: a setup whose script directory holds no revision is a
  configuration error (:class:`~zerodrift.errors.UsageError`, exit 2) naming what
  ``script_location`` / ``version_locations`` resolved to and what to change;
* :func:`unconfigured_histories`: folders of the repository that hold Alembic revision
  files but are none of the locations the configuration names (a plugin's own history
  that nothing proves);
* :func:`histories_table`: the rows the ledger shows for them.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from zerodrift.errors import UsageError

#: Folders never searched for revision files (VCS data, virtualenvs, caches).
_SKIP = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "site-packages", "dist-packages",
                   "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache", "build", "dist", "proofs"})


def no_revisions_error(described: dict[str, Any], loaded, alembic_ini: Path) -> UsageError:
    """The :class:`UsageError` for a script directory without revisions.

    ``described`` is the job's ``"script"`` answer (see the probe's ``describe``),
    ``loaded`` the :class:`~zerodrift.config.LoadedConfig`, ``alembic_ini`` the file the
    job read. The message names ``script_location`` and ``version_locations`` as
    configured and as resolved, says which folders are missing or empty, and what to change.
    """
    source = described.get("config_file") or str(alembic_ini)
    location = described.get("script_location") or "(not set)"
    option = described.get("version_locations_option")
    effective = described.get("version_locations") or []
    exists = described.get("exists") or {}
    lines = [f"no Alembic revision found — a configuration error, not a finding about the migrations ({source}):"]
    if described.get("no_script_directory"):
        lines.append(f"  script_location = {location}: {described['no_script_directory']}")
    else:
        lines.append(f"  script_location = {location} → {described.get('dir', '?')}")
    if option:
        lines.append(f"  version_locations = {option}")
    elif not described.get("no_script_directory"):
        lines.append("  version_locations: not set (alembic reads <script_location>/versions)")
    for folder in effective:
        state = "empty (no revision file)" if exists.get(folder) else "does not exist"
        lines.append(f"  searched {folder}: {state}")
    if sorted(effective) != sorted(described.get("configured_locations") or effective):
        lines.append("  (env.py changed the version locations at run time: context.script.version_locations)")
    found = unconfigured_histories(loaded.root if loaded.source else loaded.target_dir, effective)
    if found:
        lines.append("  revision files exist elsewhere: " + ", ".join(f"{f} ({n})" for f, n in found.items()))
    tcfg = loaded.config.target
    fix = ("fix: point script_location at the folder that holds env.py (its versions/ folder holds the revisions), "
           "or version_locations at the folders that hold the revision files (paths relative to the folder alembic "
           "runs in, %(here)s for alembic.ini's folder, or package:path)")
    from zerodrift.onboard.init import flask_migrate_layout

    if not tcfg.flask_app and flask_migrate_layout(alembic_ini):
        fix = ("fix: this is Flask-Migrate's layout (alembic.ini without script_location beside an env.py that reads "
               "current_app; `flask db` sets script_location from the app): set target.flask_app = "
               "\"module:create_app\", the app factory that calls Migrate.init_app")
    lines.append(f"  {fix}; then `zerodrift doctor` shows what alembic resolves (target.alembic_ini = {tcfg.alembic_ini})")
    return UsageError("\n".join(lines))


def is_revision_file(path: Path) -> bool:
    """True when ``path`` is a Python file that assigns ``revision`` and ``down_revision`` at
    module level (what Alembic reads from a revision file). Reads the file; False when it
    does not parse."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        if "down_revision" not in text:
            return False
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return False
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {"revision", "down_revision"} <= names


def unconfigured_histories(root: Path, locations: list[str]) -> dict[str, int]:
    """Folders below ``root`` holding Alembic revision files that are none of ``locations``
    (absolute paths, as alembic resolved them) nor below one: folder (relative to ``root``)
    -> number of revision files. Skips VCS folders, virtualenvs and caches."""
    known = [Path(p).resolve() for p in locations]
    found: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        here = Path(folder).resolve()
        if any(here == k or k in here.parents for k in known):
            continue
        count = sum(1 for f in files if f.endswith(".py") and f != "env.py" and is_revision_file(here / f))
        if count:
            found[os.path.relpath(here, root)] = count
    return found


def histories_table(described: dict[str, Any], root: Path, gate_id: str) -> tuple[list[list[Any]], dict[str, int]]:
    """Rows ``[folder, revisions, heads, status]`` for the ledger: every effective version
    location ("configured: migrated by <gate_id>", the gate that migrated them) and every folder with revision files the configuration does not
    name ("exists, not configured: not proven"); also returns the latter as a dict."""
    rows = []
    for folder, entry in (described.get("locations") or {}).items():
        shown = os.path.relpath(folder, root) if Path(folder).is_absolute() else folder
        rows.append([shown, entry.get("revisions", 0), ", ".join(entry.get("heads") or []) or "—", f"configured: migrated by {gate_id}"])
    extra = unconfigured_histories(root, described.get("version_locations") or [])
    for folder, count in extra.items():
        rows.append([folder, count, "—", "exists, not configured: not proven"])
    return rows, extra


__all__ = ["no_revisions_error", "unconfigured_histories", "histories_table", "is_revision_file"]
