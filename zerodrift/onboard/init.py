"""``zerodrift init``: inspect a backend's repository and write a commented ``zerodrift.toml``.

Only what was verified is written as active config; everything else is a ``# TODO:``
with the candidates as comments.

* ``alembic.ini`` is found at the target folder or below it (``.git``, virtualenvs,
  ``node_modules`` and ``site-packages`` are skipped); its ``script_location`` and
  ``version_locations`` give the migrations.
* ``env.py`` is parsed with :mod:`ast`: a variable becomes ``target.migration_url_env``
  only when its value flows into the URL env.py connects with
  (:mod:`zerodrift.onboard.urlflow`); a URL from the app's settings or alembic.ini is a TODO.
* ``target.url_scheme`` comes only from what the connection code builds (env.py and the
  target's modules it imports), or from the one driver the target's interpreter
  imports when env.py uses the URL as given; the dependency files only give candidates.
* The migrations' SQL (string constants outside docstrings, with f-string loops over
  constant tuples expanded) is searched for *statements* that grant to, revoke from or
  make owners of roles, or create them (``roles.ensure``), a runtime role (receives
  INSERT and owns the matviews), the settings (GUCs) they read and a worker write guard;
  the SQL strings are kept (``Detection.migration_sql``) for the gates' own searches.
* The application's modules give Celery apps, matview registries, refresh paths that
  take an advisory lock and the ``PYTHONPATH`` their packages need; these candidates
  are imported in the target's interpreter, and only those that give the right kind of
  object (:mod:`zerodrift.onboard.verify`), never from test code, may become active
  config. A runtime URL variable is written only when the module reading it hands it to
  ``create_engine``. The parsed modules are kept (``Detection.app_modules``) for the
  gates' own searches (e.g. SQLAlchemy metadata).
* Each installed gate writes its own ``[gates.<id>]`` table from these facts
  (``Gate.propose_config``; the facts a gate may read: :class:`zerodrift.onboard.hooks.InitFacts`).

What cannot be decided is marked ``# TODO:``. Gates whose inputs are unknown stay
commented out, so they are SKIPPED — never a PASS on a guess. The output is checked
with the same models ``zerodrift run`` uses before it is written.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from zerodrift.config import CONFIG_FILENAME, Config, format_validation_error
from zerodrift.errors import UsageError
from zerodrift.onboard.hooks import InitContext, gates_needing_runtime_role
from zerodrift.onboard.squash import SquashedBase, release_before, squash_reason, tables_created
from zerodrift.onboard.urlflow import UrlFlow, built_drivers, rewrites_plain_scheme, url_flow
from zerodrift.onboard.verify import Checked, check_in_target, shape_problem

#: Folders never searched: VCS data, virtualenvs, dependencies, caches.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "node_modules", "site-packages", "dist-packages",
    "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", ".eggs",
    "proofs",
})
#: Role names that are never "ensured": pseudo-roles and the bootstrap superuser.
NOT_ROLES = frozenset({"public", "current_user", "session_user", "current_role", "postgres", "group", "role"})
#: Names that mark an environment variable as a URL.
_URLISH = re.compile(r"URL|URI|DSN|DATABASE|CONN", re.I)
#: URL variables that are not the database's.
_NOT_DB = re.compile(r"BROKER|REDIS|CELERY|AMQP|RABBIT|SENTRY|CACHE|RESULT_BACKEND|S3|SMTP|MAIL|WEBHOOK|API", re.I)
_DB_WORD = re.compile(r"DATABASE|(?:^|_)DB(?:_|$)|DSN|PG|POSTGRES|SQL", re.I)
_TESTISH = re.compile(r"(^|/)(tests?|testing|fixtures?|conftest\.py|test_[^/]*\.py|[^/]*_test\.py)(/|$)")

_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLE_LIST = rf"(?:GROUP\s+)?{_IDENT}(?:\s*,\s*(?:GROUP\s+)?{_IDENT})*"
_GRANT = re.compile(rf"\bGRANT\s+(?P<what>[^;]+?)\s+TO\s+(?P<roles>{_ROLE_LIST})", re.I | re.S)
_REVOKE = re.compile(rf"\bREVOKE\s+(?P<what>[^;]+?)\s+FROM\s+(?P<roles>{_ROLE_LIST})", re.I | re.S)
_OWNER = re.compile(
    rf"\bALTER\s+(?P<kind>MATERIALIZED\s+VIEW|TABLE|VIEW|SEQUENCE|FUNCTION|PROCEDURE|SCHEMA|TYPE|DOMAIN|DATABASE)"
    rf"\s+[^;]*?\bOWNER\s+TO\s+(?P<role>{_IDENT})", re.I | re.S)
_POLICY = re.compile(
    rf"\bCREATE\s+POLICY\s+{_IDENT}\s+ON\s+[\w.\"]+(?:\s+AS\s+\w+)?(?:\s+FOR\s+\w+)?\s+TO\s+(?P<roles>{_ROLE_LIST})",
    re.I | re.S)
_DEFAULT_FOR = re.compile(rf"\bALTER\s+DEFAULT\s+PRIVILEGES\s+FOR\s+(?:ROLE|USER)\s+(?P<roles>{_ROLE_LIST})", re.I | re.S)
_CREATE_ROLE = re.compile(rf"\bCREATE\s+(?:ROLE|USER|GROUP)\s+(?P<role>{_IDENT})", re.I)
#: a setting (GUC) read by SQL: ``current_setting('app.tenant_id'`` → ``app.tenant_id``
SETTING_READ = re.compile(r"current_setting\(\s*'(?P<name>[A-Za-z_][\w]*\.[\w.]+)'", re.I)
_GUARD = re.compile(r"current_setting\(\s*'(?P<name>[A-Za-z_]\w*\.[\w.]+)'(?:\s*,\s*(?:true|false))?\s*\)"
                    r"(?:\s*::\s*\w+)?\s*=\s*'(?P<value>[^']*)'", re.I)
_ERRCODE = re.compile(r"ERRCODE\s*=\s*'(?P<code>[0-9A-Z]{5})'", re.I)
_RAISE = re.compile(r"RAISE\s+EXCEPTION\s+'(?P<msg>(?:[^']|'')*)'", re.I)
_FUNCTION = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?P<name>[\w.\"]+)\s*\(", re.I)
_TRIGGER = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+\S+\s+[^;]*?\bON\s+(?P<table>[\w.\"]+)"
                      r"[^;]*?\bEXECUTE\s+(?:FUNCTION|PROCEDURE)\s+(?P<fn>[\w.\"]+)\s*\(", re.I | re.S)
_MATVIEW = re.compile(r"\bCREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.\"]+)", re.I)
_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "EXECUTE")
#: what may stand right before a statement: the start of the text, a ``;``, a PL/pgSQL block
#: keyword or a dynamic ``EXECUTE '``: a GRANT in the middle of a sentence is prose, not SQL
_STATEMENT_START = re.compile(r"(?:^|[;(]|\$\$|\bBEGIN|\bTHEN|\bELSE|\bLOOP|\bDO|\bEXECUTE\s+')\s*$", re.I)
#: words that cannot be an unquoted role name (PostgreSQL reserved key words, Appendix C, and privileges)
_KEYWORDS = frozenset(w.lower() for w in _PRIVILEGES) | frozenset({
    "all", "and", "any", "as", "by", "create", "creating", "for", "from", "grant", "in", "into", "not", "of", "on",
    "only", "or", "owner", "privileges", "table", "tables", "the", "to", "user", "with", "schema", "view"})


# -- results -----------------------------------------------------------------
@dataclass
class RoleFacts:
    """What the migrations do with one role."""

    name: str
    privileges: set[str] = field(default_factory=set)  #: table privileges granted (SELECT, INSERT, …)
    owns: set[str] = field(default_factory=set)  #: object kinds it is made owner of
    member_of: set[str] = field(default_factory=set)  #: roles granted to it
    files: list[str] = field(default_factory=list)  #: migration files that name it


@dataclass
class Candidate:
    """A ``module:attribute`` found in the application's code."""

    path: str  #: ``module:attribute``
    file: Path
    root: Path  #: the folder that must be on sys.path for ``module`` to import
    imports: list[str] = field(default_factory=list)  #: top-level names the module imports
    value: Any = None  #: literal value (registries), when known
    testish: bool = False


@dataclass
class RefreshCandidate(Candidate):
    """A refresh function that mentions an advisory lock (a serialization gate's ``callable``)."""

    required: list[str] = field(default_factory=list)  #: positional parameters without a default
    returns: list[Any] = field(default_factory=list)  #: constant values it returns
    is_async: bool = False


@dataclass
class AppModule:
    """One Python module of the application (outside the migrations), as the scan read it.

    ``tree`` is its parsed source; :meth:`candidate` makes a ``module:attribute``
    :class:`Candidate` of it (the dotted module name and the folder that must be on
    ``sys.path`` for it come from :func:`_module_of`)."""

    path: Path
    source: str
    testish: bool  #: it lives in test code (its objects are never active config)
    scan_root: Path
    tree: ast.Module = field(repr=False)

    def candidate(self, attribute: str) -> Candidate:
        """``module:attribute`` of this module as a :class:`Candidate`, e.g. ``candidate("Base.metadata")``."""
        imports = _top_imports(self.tree)
        module, root = _module_of(self.path, self.scan_root, imports)
        return Candidate(f"{module}:{attribute}", self.path, root, imports, testish=self.testish)

    @property
    def depth(self) -> int:
        """Folders between the scanned folder and this file (shallower modules are proposed first)."""
        return len(self.path.relative_to(self.scan_root).parts)


@dataclass
class Detection:
    """Everything :func:`detect` found; :func:`render` turns it into TOML."""

    scan_root: Path
    alembic_ini: Path
    other_alembic_inis: list[Path] = field(default_factory=list)
    script_location: Path | None = None
    script_location_raw: str = ""
    version_dirs: list[Path] = field(default_factory=list)
    env_py: Path | None = None
    env_vars: list[str] = field(default_factory=list)  #: every variable env.py reads, in source order
    env_uses_ini_url: bool = False  #: env.py reads sqlalchemy.url from alembic.ini
    env_imports: list[str] = field(default_factory=list)  #: top-level names env.py imports
    url_scheme: str = "postgresql"
    url_scheme_reason: str = ""
    url_scheme_sure: bool = False
    url_scheme_candidates: list[str] = field(default_factory=list)  #: from the dependency files, not verified
    env_flow: UrlFlow | None = None  #: what flows into the URL env.py connects with
    runtime_candidates: list[str] = field(default_factory=list)  #: DB-like variables not seen reaching an engine
    checked: Checked | None = None  #: the candidates, imported in the target's interpreter
    revisions: list[str] = field(default_factory=list)  #: oldest first
    heads: list[str] = field(default_factory=list)
    roles: dict[str, RoleFacts] = field(default_factory=dict)
    created_roles: list[str] = field(default_factory=list)  #: roles the migrations CREATE themselves
    matviews: list[str] = field(default_factory=list)
    settings_read: list[str] = field(default_factory=list)  #: GUCs the migrations read
    migration_sql: list[tuple[str, str]] = field(default_factory=list)  #: (file name, SQL text) of the migrations
    app_modules: list[AppModule] = field(default_factory=list)  #: the application's Python modules, in file order
    worker_settings: dict[str, str] = field(default_factory=dict)
    guard_sqlstate: str = ""
    guard_message: str = ""
    guard_tables: list[str] = field(default_factory=list)
    celery_apps: list[Candidate] = field(default_factory=list)
    registries: list[Candidate] = field(default_factory=list)
    refreshers: list[RefreshCandidate] = field(default_factory=list)
    runtime_env_vars: list[str] = field(default_factory=list)  #: DB URL variables the app reads
    runtime_env_files: list[Path] = field(default_factory=list)
    package_roots: dict[str, Path] = field(default_factory=dict)  #: local top-level package -> folder holding it
    seed_files: list[Path] = field(default_factory=list)
    squashed_base: SquashedBase | None = None  #: a first revision taken for a squash (zerodrift.onboard.squash)
    venv_python: Path | None = None
    git_root: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: "Flask-Migrate" / "Flask-Alembic" when the app's code uses it (see :func:`scan_alembic_shapes`)
    flask_extension: str = ""
    flask_layout: bool = False  #: alembic.ini without script_location beside a current_app env.py (Flask-Migrate)
    flask_apps: list[Candidate] = field(default_factory=list)  #: the app factories / apps that set the extension up
    needs_runner: str = ""  #: why env.py must run in a particular runner (an AnyIO worker thread)
    runners: list[Candidate] = field(default_factory=list)  #: functions shaped like fn(command, config)

    @property
    def config_dir(self) -> Path:
        """Where ``zerodrift.toml`` goes: next to alembic.ini (beside the migrations folder for
        Flask-Migrate, whose alembic.ini lives inside it)."""
        return self.alembic_ini.parent.parent if self.flask_layout else self.alembic_ini.parent

    @property
    def migration_url_env(self) -> list[str]:
        """The variables env.py reads into the URL it connects with, as the whole URL (urlflow)."""
        return list(self.env_flow.whole) if self.env_flow else []

    def problem(self, kind: str, cand: Candidate) -> str:
        """Why ``cand`` may not be written as active config ('' when it may): a test module's
        object never is; otherwise the target interpreter must import it with the right shape."""
        if cand.testish:
            return "it lives in test code"
        if self.checked is None or self.checked.problem:
            return self.checked.problem if self.checked else "not checked in the target's interpreter"
        return shape_problem(kind, self.checked.objects.get(cand.path))

    def runtime_guess(self) -> tuple[str, str, bool]:
        """(role, reason, sure): the role that receives INSERT/SELECT and owns the matviews."""
        scored = []
        for facts in self.roles.values():
            owns_mv = "MATERIALIZED VIEW" in facts.owns
            writes = "INSERT" in facts.privileges
            reads = "SELECT" in facts.privileges
            hint = bool(re.search(r"user|app|api|web|runtime|svc|service", facts.name, re.I))
            score = 4 * owns_mv + 2 * writes + reads + (0.5 if hint else 0)
            if score >= 2:
                scored.append((score, facts.name, owns_mv, writes, reads))
        if not scored:
            return "", "no role receives INSERT or owns the materialized views", False
        scored.sort(key=lambda s: (-s[0], s[1]))
        score, name, owns_mv, writes, reads = scored[0]
        tie = len(scored) > 1 and scored[1][0] == score
        what = ", ".join(w for w, b in (("INSERT", writes), ("SELECT", reads)) if b)
        reason = f"{name} receives {what or 'no table privilege'}" + (" and owns the materialized views" if owns_mv else "")
        sure = owns_mv and writes and not tie
        if tie:
            reason += f" (as does {scored[1][1]})"
        return name, reason, sure

    def import_roots(self) -> list[Path]:
        """Folders the target's processes need on PYTHONPATH, for the chosen candidates and their imports."""
        roots: list[Path] = []
        chosen = [c for c in (self.celery_apps[:1] + self.registries[:1] + self.refreshers[:1]
                              + self.flask_apps[:1] + self.runners[:1])]
        for cand in chosen:
            roots.append(cand.root)
            for name in cand.imports:
                if name in self.package_roots:
                    roots.append(self.package_roots[name])
        for name in self.env_imports:  # e.g. `from app.models import Base` for target_metadata
            if name in self.package_roots:
                roots.append(self.package_roots[name])
        return list(dict.fromkeys(r.resolve() for r in roots))


@dataclass
class InitResult:
    """Outcome of :func:`init_config`: the TOML text, where it goes, and whether it was written."""

    text: str
    path: Path
    written: bool
    detection: Detection
    todos: list[str] = field(default_factory=list)


# -- file walking ------------------------------------------------------------
def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def walk(root: Path, *, skip: Iterable[Path] = ()) -> Iterator[Path]:
    """Files under ``root`` in a stable order, skipping :data:`SKIP_DIRS`, virtualenvs and ``skip``."""
    skipped = {p.resolve() for p in skip}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and not _is_venv(here / d) and (here / d).resolve() not in skipped)
        for name in sorted(files):
            yield here / name


def find_alembic_inis(root: Path) -> list[Path]:
    """Every ``alembic.ini`` under ``root``, shallowest first, test fixtures last."""
    found = [p for p in walk(root) if p.name == "alembic.ini"]
    return sorted(found, key=lambda p: (bool(_TESTISH.search(_rel(p, root))), len(p.relative_to(root).parts), str(p)))


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


# -- alembic.ini and env.py -------------------------------------------------
def flask_migrate_layout(ini: Path) -> bool:
    """True for Flask-Migrate's layout: ``migrations/alembic.ini`` without ``script_location``
    beside an ``env.py`` that reads ``current_app`` (``flask db`` sets ``script_location`` to
    that folder: ``Migrate.get_config``)."""
    env_py = ini.parent / "env.py"
    try:
        return env_py.is_file() and "current_app" in env_py.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def read_alembic_ini(ini: Path) -> tuple[str, Path | None, list[Path]]:
    """(raw script_location, resolved script folder or None, version folders) of an alembic.ini,
    read as it stands, without running env.py: ``%(here)s`` is alembic.ini's folder, a
    ``package:path`` location is looked up in the tree, and Flask-Migrate's layout (no
    ``script_location``, :func:`flask_migrate_layout`) gives alembic.ini's own folder. A run
    resolves the script directory through env.py instead (``zerodrift/probes/alembic_job.py``);
    this static reading serves ``init``, the extension scan and ``doctor``'s first line."""
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent)}, interpolation=configparser.BasicInterpolation())
    try:
        parser.read(ini, encoding="utf-8")
        section = parser["alembic"] if parser.has_section("alembic") else None
        raw = section.get("script_location", "") if section is not None else ""
        versions_raw = section.get("version_locations", "") if section is not None else ""
        separator = section.get("version_path_separator", "") if section is not None else ""
    except (configparser.Error, KeyError):
        return "", None, []
    script = _resolve_location(ini.parent, raw) if raw else ini.parent if flask_migrate_layout(ini) else None
    dirs: list[Path] = []
    if versions_raw:
        seps = {"os": os.pathsep, ":": ":", ";": ";", "space": " ", "newline": "\n"}
        sep = seps.get(separator.strip(), None)
        parts = versions_raw.split(sep) if sep else re.split(r"[,\s]+", versions_raw)
        dirs = [d for d in (_resolve_location(ini.parent, p.strip()) for p in parts if p.strip()) if d]
    elif script is not None:
        dirs = [script / "versions"]
    return raw, script, [d for d in dirs if d.is_dir()]


def _resolve_location(base: Path, raw: str) -> Path | None:
    raw = raw.strip()
    if re.match(r"^[A-Za-z_][\w.]*:", raw) and not re.match(r"^[A-Za-z]:[\\/]", raw):
        package, _, sub = raw.partition(":")  # "package:folder" form: look for the package in the tree
        for init_py in walk(base):
            if init_py.name == "__init__.py" and init_py.parent.name == package.split(".")[-1]:
                candidate = init_py.parent / sub
                if candidate.is_dir():
                    return candidate.resolve()
        return None
    path = Path(raw)
    path = path if path.is_absolute() else base / path
    return path.resolve() if path.is_dir() else None


def _is_environ(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Attribute) and node.attr == "environ")
            or (isinstance(node, ast.Name) and node.id == "environ"))


def env_vars_read(source: str) -> list[str]:
    """Environment variable names a Python module reads, in source order.

    Recognises ``os.environ["X"]``, ``os.environ.get("X")``, ``os.getenv("X")``,
    ``environ[...]``/``getenv(...)`` after ``from os import ...``, and ``"X" in os.environ``.
    Raises SyntaxError when ``source`` does not parse.
    """
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                name = node.slice.value
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and _is_environ(func.value):
                name = node.args[0].value
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (isinstance(func, ast.Name) and func.id == "getenv"):
                name = node.args[0].value
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) \
                and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and any(_is_environ(c) for c in node.comparators):
            name = node.left.value
        if name:
            found.append((node.lineno, node.col_offset, name))
    return list(dict.fromkeys(n for _, _, n in sorted(found)))


# -- migrations --------------------------------------------------------------
def sql_strings(source: str) -> list[str]:
    """The string constants of a migration module outside ``downgrade()`` and docstrings.

    f-strings are expanded over ``for`` loops whose iterable is a literal tuple/list of
    strings or a module-level constant holding one (``for table in TABLES:``); other
    placeholders stay as ``{expr}``. Raises SyntaxError when ``source`` does not parse.
    """
    tree = ast.parse(source)
    constants: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = _literal_strings(node.value) if node.value is not None else None
            for t in targets:
                if isinstance(t, ast.Name) and value is not None:
                    constants[t.id] = value
    out: list[str] = []

    def visit(node: ast.AST, env: dict[str, list[str]]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "downgrade":
            return
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            for child in node.body[1:]:  # a docstring is prose about the SQL, never SQL
                visit(child, env)
            if not isinstance(node, ast.Module):
                for child in node.decorator_list:
                    visit(child, env)
            return
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            values = _literal_strings(node.iter)
            if values is None and isinstance(node.iter, ast.Name):
                values = constants.get(node.iter.id)
            inner = {**env, node.target.id: values} if values else env
            for child in node.body + node.orelse:
                visit(child, inner)
            return
        if isinstance(node, ast.JoinedStr):
            out.extend(_expand(node, env))
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, env)

    visit(tree, {})
    return out


def _literal_strings(node: ast.AST | None) -> list[str] | None:
    try:
        value = ast.literal_eval(node) if node is not None else None
    except (ValueError, SyntaxError, TypeError):
        return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _expand(node: ast.JoinedStr, env: dict[str, list[str]]) -> list[str]:
    parts: list[list[str]] = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append([str(value.value)])
        elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name) and value.value.id in env:
            parts.append(env[value.value.id])
        else:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            parts.append(["{" + ast.unparse(inner) + "}"])
    return ["".join(combo) for combo in itertools.islice(itertools.product(*parts), 64)]


def _idents(text: str) -> list[str]:
    names = []
    for part in re.split(r"\s*,\s*", text.strip()):
        part = re.sub(r"^GROUP\s+", "", part, flags=re.I).strip()
        if part.startswith('"') and part.endswith('"'):
            names.append(part[1:-1])
        elif part:
            names.append(part.lower())
    return names


def _role_ok(name: str) -> bool:
    return (bool(name) and name.lower() not in NOT_ROLES and not name.lower().startswith("pg_") and "{" not in name
            and name.lower() not in _KEYWORDS)


def _statements(rx: re.Pattern, sql: str) -> Iterator[re.Match]:
    """Matches of ``rx`` that begin a SQL statement (see :data:`_STATEMENT_START`)."""
    for m in rx.finditer(sql):
        if _STATEMENT_START.search(sql[:m.start()]):
            yield m


def _privileges(what: str) -> set[str]:
    words = {w.upper() for w in re.findall(r"[A-Za-z]+", what)}
    if "ALL" in words:
        return {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
    return {p for p in _PRIVILEGES if p in words}


def scan_migrations(det: Detection) -> None:
    """Fill roles, revisions, matviews, settings and the worker guard from the migration files."""
    files = [f for d in det.version_dirs for f in sorted(d.rglob("*")) if f.suffix in (".py", ".sql") and f.is_file()
             and "__pycache__" not in f.parts]
    down: dict[str, list[str]] = {}
    bases: list[tuple[str, Path, str, list[str]]] = []  #: (revision, file, source, SQL strings) of base revisions
    guard_functions: set[str] = set()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".py":
            try:
                strings = sql_strings(text)
                revision, down_revs = revision_of(text)
            except SyntaxError:
                det.notes.append(f"{_rel(path, det.config_dir)} does not parse as Python; its SQL was not read")
                continue
            if revision:
                down[revision] = down_revs
                if not down_revs:
                    bases.append((revision, path, text, strings))
        else:
            strings = [text]
        label = path.name
        for sql in strings:
            det.migration_sql.append((label, sql))
            _scan_sql(det, sql, label, guard_functions)
    det.revisions, det.heads = _order_revisions(down)
    for revision, path, text, strings in bases:
        tables = tables_created(text, strings)
        reason = squash_reason(revision, path, text, tables)
        if reason and det.squashed_base is None:
            det.squashed_base = SquashedBase(revision, path, tables, reason)
    det.created_roles = sorted(set(det.created_roles))
    det.settings_read = [s for s in dict.fromkeys(det.settings_read) if s not in det.worker_settings]
    det.guard_tables = list(dict.fromkeys(det.guard_tables))


def _facts(det: Detection, name: str, label: str) -> RoleFacts:
    facts = det.roles.setdefault(name, RoleFacts(name))
    if label not in facts.files:
        facts.files.append(label)
    return facts


def _scan_sql(det: Detection, sql: str, label: str, guard_functions: set[str]) -> None:
    for m in _statements(_GRANT, sql):
        what = m.group("what")
        roles = [r for r in _idents(m.group("roles")) if _role_ok(r)]
        if re.search(r"\bON\b", what, re.I):
            privileges = _privileges(re.split(r"\bON\b", what, maxsplit=1, flags=re.I)[0])
            for r in roles:
                _facts(det, r, label).privileges |= privileges
        else:  # GRANT role TO role: both must exist
            granted = [g for g in _idents(what) if _role_ok(g)]
            for g in granted:
                _facts(det, g, label)
            for r in roles:
                _facts(det, r, label).member_of |= set(granted)
    for m in _statements(_REVOKE, sql):
        for r in _idents(m.group("roles")):
            if _role_ok(r):
                _facts(det, r, label)
    for m in _statements(_OWNER, sql):
        role = _idents(m.group("role"))[0]
        if _role_ok(role):
            _facts(det, role, label).owns.add(re.sub(r"\s+", " ", m.group("kind").upper()))
    for rx in (_POLICY, _DEFAULT_FOR):
        for m in _statements(rx, sql):
            for r in _idents(m.group("roles")):
                if _role_ok(r):
                    _facts(det, r, label)
    for m in _statements(_CREATE_ROLE, sql):
        role = _idents(m.group("role"))[0]
        if _role_ok(role):
            det.created_roles.append(role)
    for m in _MATVIEW.finditer(sql):
        if "{" not in m.group("name"):
            det.matviews.append(m.group("name").strip('"'))
    det.settings_read.extend(m.group("name") for m in SETTING_READ.finditer(sql))
    if _RAISE.search(sql) and _GUARD.search(sql):
        guard = _GUARD.search(sql)
        det.worker_settings.setdefault(guard.group("name"), guard.group("value"))
        code = _ERRCODE.search(sql)
        if code and not det.guard_sqlstate:
            det.guard_sqlstate = code.group("code")
        msg = _RAISE.search(sql).group("msg").replace("''", "'")
        fragment = re.sub(r"\s*[(\[{][^)\]}]*$", "", msg.split("%")[0]).strip().rstrip("=:,;-").strip()
        if fragment and not det.guard_message:
            det.guard_message = re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", fragment)
        fn = _FUNCTION.search(sql)
        if fn:
            guard_functions.add(fn.group("name").strip('"').split(".")[-1].lower())
    for m in _TRIGGER.finditer(sql):
        fn = m.group("fn").strip('"').split(".")[-1].lower()
        table = m.group("table").strip('"')
        if fn in guard_functions and "{" not in table:
            det.guard_tables.append(table)


def revision_of(source: str) -> tuple[str, list[str]]:
    """``(revision, down_revisions)`` of a migration module's source ('' and [] when not set).

    Raises SyntaxError when ``source`` does not parse."""
    revision, down = "", []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            try:
                value = ast.literal_eval(node.value) if node.value is not None else None
            except (ValueError, SyntaxError, TypeError):
                continue
            if "revision" in names and isinstance(value, str):
                revision = value
            if "down_revision" in names:
                down = [value] if isinstance(value, str) else [v for v in (value or []) if isinstance(v, str)]
    return revision, down


def _order_revisions(down: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    referenced = {d for ds in down.values() for d in ds}
    heads = sorted(r for r in down if r not in referenced)
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(rev: str) -> None:
        if rev in seen or rev not in down:
            return
        seen.add(rev)
        for parent in down[rev]:
            visit(parent)
        ordered.append(rev)

    for rev in sorted(down):
        visit(rev)
    return ordered, heads


# -- application code --------------------------------------------------------
def _module_of(path: Path, scan_root: Path, imports: list[str]) -> tuple[str, Path]:
    """(dotted module name, folder to put on sys.path) of a Python file.

    Regular packages are climbed through their ``__init__.py`` files; for a module
    outside one (e.g. a namespace package), an ancestor folder whose name the module
    imports as a top-level package is taken as its package.
    """
    root = path.parent
    while (root / "__init__.py").is_file() and root.parent != root and scan_root != root:
        root = root.parent
    if root == scan_root and (root / "__init__.py").is_file():
        root = root.parent
    if root == path.parent:
        for ancestor in [path.parent, *path.parent.parents]:
            if ancestor.name in imports:
                root = ancestor.parent
                break
            if ancestor == scan_root or ancestor.parent == ancestor:
                break
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts), root


def _top_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


def _is_celery_call(node: ast.AST | None) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "Celery") or (isinstance(f, ast.Attribute) and f.attr == "Celery")


def _app_sources(det: Detection, files: list[Path]) -> Iterator[tuple[Path, str]]:
    """(path, text) of the application's Python files: ``files`` outside the migrations folders."""
    migration_dirs = [d for d in ([det.script_location] if det.script_location else []) + det.version_dirs]
    for path in files:
        if path.suffix != ".py" or any(d == path or d in path.parents for d in migration_dirs):
            continue
        try:
            yield path, path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue


def scan_application(det: Detection, files: list[Path]) -> None:
    """Fill Celery apps, matview registries, refresh callables and runtime URL variables."""
    for path, source in _app_sources(det, files):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        rel = _rel(path, det.scan_root)
        testish = bool(_TESTISH.search(rel))
        det.app_modules.append(AppModule(path, source, testish, det.scan_root, tree))
        mentions = ("Celery" in source, re.search(r"MATVIEW|MATERIALIZED", source, re.I) is not None,
                    "refresh" in source.lower())
        if not testish:
            try:
                db_vars = [n for n in env_vars_read(source) if _URLISH.search(n) and _DB_WORD.search(n) and not _NOT_DB.search(n)]
                reaching = url_flow(source).whole if db_vars or "engine" in source else []
            except SyntaxError:
                db_vars, reaching = [], []
            if reaching:
                det.runtime_env_vars.extend(reaching)
                det.runtime_env_files.append(path)
            det.runtime_candidates.extend(n for n in db_vars if n not in reaching)
        if not any(mentions):
            continue
        imports = _top_imports(tree)
        module, root = _module_of(path, det.scan_root, imports)
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                for name in names:
                    if _is_celery_call(node.value):
                        det.celery_apps.append(Candidate(f"{module}:{name}", path, root, imports, testish=testish))
                    elif re.search(r"MATVIEW|MATERIALIZED", name, re.I) and isinstance(node.value, (ast.List, ast.Tuple)):
                        try:
                            value = ast.literal_eval(node.value)
                        except (ValueError, SyntaxError, TypeError):
                            value = None
                        det.registries.append(Candidate(f"{module}:{name}", path, root, imports,
                                                        value=list(value) if value is not None else None, testish=testish))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "refresh" in node.name.lower():
                body = ast.get_source_segment(source, node) or ""
                if not re.search(r"advisory", body, re.I):
                    continue
                args = node.args
                positional = args.posonlyargs + args.args
                required = [a.arg for a in positional[:len(positional) - len(args.defaults)]]
                returns = []
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Return) and isinstance(sub.value, ast.Constant):
                        returns.append(sub.value.value)
                det.refreshers.append(RefreshCandidate(f"{module}:{node.name}", path, root, imports, testish=testish,
                                                       required=required, returns=list(dict.fromkeys(returns)),
                                                       is_async=isinstance(node, ast.AsyncFunctionDef)))
    key = lambda c: (c.testish, len(c.file.relative_to(det.scan_root).parts), c.path)  # noqa: E731
    det.celery_apps.sort(key=lambda c: (c.testish, "celery" not in c.file.name.lower(), *key(c)[1:]))
    det.registries.sort(key=key)
    det.refreshers.sort(key=lambda c: (c.testish, not c.returns, *key(c)[1:]))
    det.runtime_env_vars = list(dict.fromkeys(det.runtime_env_vars))
    det.runtime_candidates = [n for n in dict.fromkeys(det.runtime_candidates) if n not in det.runtime_env_vars]


_FLASK_EXTENSIONS = {"flask_migrate": ("Flask-Migrate", "Migrate"), "flask_alembic": ("Flask-Alembic", "Alembic")}
_FACTORY_NAMES = ("create_app", "make_app", "app_factory", "get_app")


def scan_alembic_shapes(det: Detection, files: list[Path]) -> None:
    """How the target runs alembic, from its code: a Flask app that sets up Flask-Migrate or
    Flask-Alembic (``target.flask_app``: an app factory such as ``create_app``, or a module-level
    ``app = Flask(...)``, in a module that imports the extension), and, when env.py must run in
    an AnyIO worker thread (it calls ``anyio.from_thread``), functions shaped like
    ``fn(command, config)`` that call ``command(config)`` or hand both on (``target.alembic_runner``).
    Reads the files with :mod:`ast`; test code is kept but marked."""
    env_source = det.env_py.read_text(encoding="utf-8", errors="replace") if det.env_py else ""
    if "from_thread" in env_source:
        det.needs_runner = "env.py calls anyio.from_thread, which works only in an AnyIO worker thread"
    for path, source in _app_sources(det, files):
        extension = next((v for k, v in _FLASK_EXTENSIONS.items() if k in source), None)
        if extension is None and not (det.needs_runner and "config" in source):
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        imports = _top_imports(tree)
        module, root = _module_of(path, det.scan_root, imports)
        testish = bool(_TESTISH.search(_rel(path, det.scan_root)))
        if extension is not None:
            det.flask_extension = det.flask_extension or extension[0]
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name in _FACTORY_NAMES:
                    det.flask_apps.append(Candidate(f"{module}:{node.name}", path, root, imports, testish=testish))
                elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                      and dotted(node.value.func).split(".")[-1] == "Flask"):
                    det.flask_apps.extend(Candidate(f"{module}:{t.id}", path, root, imports, testish=testish)
                                          for t in node.targets if isinstance(t, ast.Name))
        if det.needs_runner:
            det.runners.extend(Candidate(f"{module}:{node.name}", path, root, imports, testish=testish)
                               for node in tree.body if _runs_command(node))
    det.flask_apps.sort(key=lambda c: c.testish)
    det.runners.sort(key=lambda c: c.testish)


def _runs_command(node: ast.AST) -> bool:
    """A module-level function of two positional parameters (command, config) that calls the
    first with the second, or passes both on in one call (``to_thread.run_sync(command, config)``)."""
    if not isinstance(node, ast.FunctionDef) or len(node.args.args) != 2:
        return False
    first, second = (a.arg for a in node.args.args)
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        names = [a.id for a in call.args if isinstance(a, ast.Name)]
        if isinstance(call.func, ast.Name) and call.func.id == first and second in names:
            return True
        if first in names and second in names:
            return True
    return False


def dotted(node: ast.AST) -> str:
    """``a.b.C`` of a Name/Attribute node; empty for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _package_roots(files: list[Path]) -> dict[str, Path]:
    """Top-level packages in the tree (a folder with ``__init__.py`` whose parent has none) -> parent folder."""
    roots: dict[str, Path] = {}
    for path in files:
        if path.name == "__init__.py":
            pkg = path.parent
            if not (pkg.parent / "__init__.py").is_file():
                roots.setdefault(pkg.name, pkg.parent.resolve())
    return roots


def _local_module_file(det: Detection, module: str) -> Path | None:
    top = module.split(".")[0]
    if top not in det.package_roots:
        return None
    base = det.package_roots[top].joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _connection_modules(det: Detection, depth: int = 3) -> list[Path]:
    """env.py and the target's own modules it imports, and those they import (``depth`` levels)."""
    if det.env_py is None:
        return []
    seen: list[Path] = [det.env_py]
    frontier = [det.env_py]
    for _ in range(depth):
        nxt = []
        for path in frontier:
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] + [f"{node.module}.{a.name}" for a in node.names] \
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                for name in names:
                    found = _local_module_file(det, name)
                    if found is not None and found not in seen:
                        seen.append(found)
                        nxt.append(found)
        frontier = nxt
    return seen


def _dependency_drivers(det: Detection, files: list[Path]) -> list[str]:
    """Schemes the dependency files suggest (never written as active config: not what the code builds)."""
    deps = ""
    candidates = [f for f in files if f.name in ("pyproject.toml", "setup.cfg", "setup.py", "Pipfile")
                  or re.match(r"requirements.*\.(txt|in)$", f.name)]
    for folder in [det.config_dir, *det.config_dir.parents]:
        for name in ("pyproject.toml", "requirements.txt", "setup.cfg", "Pipfile"):
            if (folder / name).is_file():
                candidates.append(folder / name)
        if det.git_root is None or folder == det.git_root or folder == det.scan_root.parent:
            break
    for f in dict.fromkeys(candidates):
        deps += f.read_text(encoding="utf-8", errors="replace") + "\n"
    out = []
    if re.search(r"\basyncpg\b", deps):
        out.append("postgresql+asyncpg")
    if re.search(r"\bpsycopg(?!2)(?:\[[\w,]+\])?(?:\s*[<>=~!]|\s*$|\s*\"|\s*')", deps, re.M):
        out.append("postgresql+psycopg")
    if re.search(r"\bpsycopg2", deps):
        out.append("postgresql")
    return out


def _detect_url_scheme(det: Detection, files: list[Path]) -> None:
    """The driver, only from evidence: what the connection code builds (env.py and the target's
    modules it imports, :func:`~zerodrift.onboard.urlflow.built_drivers`), or — when env.py
    connects with the URL variable as is — the only driver the target's interpreter imports.
    Otherwise not sure: the dependency files' drivers become commented candidates."""
    det.url_scheme_candidates = _dependency_drivers(det, files)
    env_source = det.env_py.read_text(encoding="utf-8", errors="replace") if det.env_py else ""
    built: dict[str, list[str]] = {}
    for path in _connection_modules(det):
        try:
            for scheme, line in built_drivers(path.read_text(encoding="utf-8", errors="replace")):
                built.setdefault(scheme, []).append(f"{_rel(path, det.config_dir)}:{line}")
        except (SyntaxError, ValueError):
            continue
    try:
        rewrites = bool(env_source) and rewrites_plain_scheme(env_source)
    except SyntaxError:
        rewrites = False
    if rewrites and det.migration_url_env:
        det.url_scheme, det.url_scheme_sure = "postgresql", True
        det.url_scheme_reason = "env.py turns a plain postgresql:// URL into the driver it wants"
        return
    if len(built) == 1:
        (scheme, where), = built.items()
        det.url_scheme, det.url_scheme_sure = scheme, True
        det.url_scheme_reason = f"the connection code builds it ({', '.join(where[:2])})"
        return
    if built:
        det.url_scheme_candidates = list(dict.fromkeys(list(built) + det.url_scheme_candidates))
        det.url_scheme_reason = "the connection code builds several schemes (" + "; ".join(
            f"{k} at {', '.join(v[:2])}" for k, v in built.items()) + ")"
        return
    drivers = det.checked.drivers if det.checked and not det.checked.problem else []
    is_async = re.search(r"async_engine_from_config|create_async_engine|AsyncEngine", env_source) is not None
    usable = [d for d in drivers if (d in ("asyncpg", "psycopg") if is_async else d != "asyncpg")]
    if det.migration_url_env and len(usable) == 1:
        det.url_scheme = "postgresql" if usable[0] == "psycopg2" else f"postgresql+{usable[0]}"
        det.url_scheme_sure = True
        det.url_scheme_reason = (f"env.py connects with the URL as given and the target interpreter imports only "
                                 f"{usable[0]} ({'async' if is_async else 'sync'} engine)")
        return
    det.url_scheme, det.url_scheme_sure = "postgresql", False
    det.url_scheme_reason = ("the connection code builds no driver"
                             + (f"; the target interpreter imports {', '.join(drivers)}" if drivers else ""))


def detect(target: Path, *, check: bool = True) -> Detection:
    """Inspect the repository at ``target`` (a folder, or an alembic.ini file).

    With ``check`` the candidates (Celery app, registry, refresh callable) are imported
    in the target's interpreter (:mod:`zerodrift.onboard.verify`): only those that import
    with the right shape become active config.

    Returns a :class:`Detection`. Raises UsageError when ``target`` does not exist
    or no alembic.ini is found under it.
    """
    target = Path(target)
    if target.is_file() and target.suffix == ".ini":
        inis, scan_root = [target.resolve()], target.resolve().parent
    elif target.is_dir():
        scan_root = target.resolve()
        inis = find_alembic_inis(scan_root)
    else:
        raise UsageError(f"target {target} does not exist: name the backend's folder (the one holding alembic.ini, or above it)")
    if not inis:
        raise UsageError(f"no alembic.ini found in {target} or its sub-folders (.git, virtualenvs, node_modules and "
                         "site-packages are not searched): name the folder that holds the Alembic project")
    det = Detection(scan_root=scan_root, alembic_ini=inis[0].resolve(), other_alembic_inis=[p.resolve() for p in inis[1:]])
    det.git_root = next((p for p in [det.config_dir, *det.config_dir.parents] if (p / ".git").exists()), None)
    det.script_location_raw, det.script_location, det.version_dirs = read_alembic_ini(det.alembic_ini)
    det.flask_layout = not det.script_location_raw and det.script_location == det.alembic_ini.parent
    if det.script_location is not None and (det.script_location / "env.py").is_file():
        det.env_py = det.script_location / "env.py"
        source = det.env_py.read_text(encoding="utf-8", errors="replace")
        try:
            det.env_vars = env_vars_read(source)
            det.env_imports = _top_imports(ast.parse(source))
        except SyntaxError as exc:
            det.notes.append(f"env.py does not parse ({exc}); its environment variables were not read")
        try:
            det.env_flow = url_flow(source)
        except SyntaxError:
            det.env_flow = None
        det.env_uses_ini_url = bool(det.env_flow and det.env_flow.ini)
    files = list(walk(scan_root))
    if det.version_dirs:
        scan_migrations(det)
    det.package_roots = _package_roots([f for f in files if not any(d in f.parents for d in det.version_dirs)])
    scan_application(det, files)
    scan_alembic_shapes(det, files)
    det.seed_files = [f for f in files if f.suffix == ".sql" and "seed" in f.name.lower()
                      and not any(d in f.parents for d in det.version_dirs)]
    for folder in [det.config_dir, det.scan_root] + ([det.git_root] if det.git_root else []):
        for venv in (".venv", "venv"):
            python = folder / venv / "bin" / "python"
            if python.exists() and det.venv_python is None:
                det.venv_python = python
    if det.squashed_base is not None:
        base = det.squashed_base
        base.release, base.release_note = release_before(det.git_root, base.file)
    if check:
        det.checked = _check_candidates(det)
    _detect_url_scheme(det, files)
    return det


def _check_candidates(det: Detection) -> Checked:
    """Import every non-test candidate in the target's interpreter (the virtualenv found, else
    the one running zerodrift, which is ``target.python``'s default)."""
    import sys

    cands = [c for c in det.celery_apps + det.registries + det.refreshers if not c.testish][:15]
    roots = list(dict.fromkeys(det.import_roots() + [c.root.resolve() for c in cands]))
    python = str(det.venv_python) if det.venv_python else sys.executable
    return check_in_target(python, [c.path for c in cands], roots, det.config_dir)


# -- rendering ---------------------------------------------------------------
def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (strings, numbers, booleans, lists, inline tables).

    Raises TypeError for a value TOML cannot hold (None, objects).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"cannot write {value!r} as TOML")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.todos: list[str] = []

    def comment(self, text: str, *, prefix: str = "# ") -> None:
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split(" "):
                if line and len(line) + len(word) + 1 > 96:
                    self.lines.append((prefix + line).rstrip())
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            self.lines.append((prefix + line).rstrip())

    def todo(self, text: str) -> None:
        self.todos.append(text)
        self.comment("TODO: " + text)

    def key(self, key: str, value: Any, note: str = "") -> None:
        self.lines.append(f"{_key(key)} = {toml_value(value)}" + (f"  # {note}" if note else ""))

    def commented_key(self, key: str, value: Any, note: str = "") -> None:
        self.lines.append(f"# {_key(key)} = {toml_value(value)}" + (f"  # {note}" if note else ""))

    def raw(self, line: str = "") -> None:
        self.lines.append(line)

    def text(self) -> str:
        out: list[str] = []
        for line in self.lines:
            if line == "" and (not out or out[-1] == ""):
                continue
            out.append(line)
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def render(det: Detection) -> tuple[str, list[str]]:
    """The commented TOML for ``det`` and the list of TODOs it contains.

    The ``[gates.*]`` tables are the installed gates' own proposals (``Gate.propose_config``,
    :mod:`zerodrift.onboard.hooks`), written in gate order from the facts of ``det``."""
    from zerodrift.config import LoadedConfig
    from zerodrift.plugins import installed_gates

    gates = installed_gates()
    defaults = LoadedConfig(config=Config(), root=det.config_dir, source=None, target_dir=det.config_dir)
    w = _Writer()
    here = det.config_dir
    w.comment("zerodrift configuration, written by `zerodrift init`.")
    w.comment("Paths are relative to this file's folder. Lines marked TODO need your decision; a gate whose "
              "inputs are commented out is SKIPPED with the reason (never PASS) until you fill them in. "
              "Every key, its type, default and meaning: `zerodrift config-reference [SECTION or GATE]`. Check the setup with `zerodrift doctor`, then `zerodrift run`.")
    if det.other_alembic_inis:
        w.todo("other Alembic projects were found too: " + ", ".join(_rel(p, det.scan_root) for p in det.other_alembic_inis)
               + f". This file is for {_rel(det.alembic_ini, det.scan_root)}; run `zerodrift init <folder>` for each other one.")
    for note in det.notes:
        w.comment("note: " + note)

    # [target]
    w.raw()
    w.raw("[target]")
    w.key("alembic_ini", _rel(det.alembic_ini, here))
    _render_alembic_shape(w, det)
    if det.script_location is None:
        w.todo(f"alembic.ini's script_location ({det.script_location_raw or 'missing'}) was not found: check alembic.ini.")
    elif det.env_py and "script.version_locations" in det.env_py.read_text(encoding="utf-8", errors="replace"):
        w.comment(f"{_rel(det.env_py, here)} sets the version locations at run time (context.script.version_locations): "
                  "zerodrift reads the revisions after env.py ran, as alembic upgrade does; `zerodrift doctor` shows them.")
    elif not det.version_dirs:
        w.todo(f"no versions folder under {_rel(det.script_location, here)}: check version_locations in alembic.ini.")
    if det.venv_python is not None:
        w.todo(f"a virtualenv was found at {_rel(det.venv_python, here)}: if it has the backend's dependencies, set "
               "python to its absolute path here, or pass --python / ZERODRIFT_PYTHON (default: the interpreter running zerodrift).")
        w.commented_key("python", str(det.venv_python))
    else:
        w.comment("python: the interpreter with the backend's dependencies (alembic, its driver, celery); "
                  "default: the one running zerodrift.")
        w.commented_key("python", "/path/to/backend/venv/bin/python")
    roots = det.import_roots()
    if roots:
        entries = [_rel(r, here) for r in roots]
        modules = [c.path.split(":")[0] for c in (det.celery_apps[:1] + det.registries[:1] + det.refreshers[:1]
                                                   + det.flask_apps[:1] + det.runners[:1])]
        modules += [n for n in det.env_imports if n in det.package_roots]
        w.comment(f"the target's code imports {', '.join(dict.fromkeys(modules))}: these folders must be on PYTHONPATH "
                  "(a probe runs as a script, so the current folder is not on sys.path).")
        w.key("pythonpath", entries)
    else:
        w.comment("pythonpath: folders holding the app's packages, if the target interpreter does not have them installed.")
        w.commented_key("pythonpath", ["."])
    migration_env = det.migration_url_env
    env_rel = _rel(det.env_py, here) if det.env_py else "env.py"
    flow = det.env_flow
    if migration_env:
        w.comment(f"{env_rel} connects with the URL in these variables; zerodrift sets each to a throwaway database.")
        w.key("migration_url_env", migration_env)
        other = [n for n in det.env_vars if n not in migration_env]
        if other:
            w.todo(f"{env_rel} also reads {', '.join(other)}: give fixed values in [target.env] if it needs them.")
    else:
        if flow is not None and flow.parts:
            where = f"builds its URL from the variables {', '.join(flow.parts)}"
        elif flow is not None and flow.external:
            where = f"takes its URL from the app's code ({', '.join(flow.external[:3])})"
        elif flow is not None and flow.ini:
            where = "reads sqlalchemy.url from alembic.ini"
        else:
            where = "reads no URL variable that reaches its connection"
        w.todo(f"{env_rel} {where}: zerodrift hands the URL through environment variables, so name the variable "
               "that holds the whole URL (make env.py read one, e.g. url = os.environ.get(\"DATABASE_URL\") or …).")
        candidates = [n for n in det.env_vars if _URLISH.search(n) and not _NOT_DB.search(n)]
        if candidates:
            w.comment(f"candidates {env_rel} reads (not seen reaching its URL): {', '.join(candidates)}")
        w.commented_key("migration_url_env", candidates[:1] or ["DATABASE_URL"])
    if det.runtime_env_vars:
        w.comment(f"the app hands these to create_engine as the URL ({', '.join(_rel(f, here) for f in det.runtime_env_files[:3])}).")
        w.key("runtime_url_env", det.runtime_env_vars)
    else:
        w.todo("no variable was seen reaching the app's create_engine URL: name the one the app's runtime role "
               "connects with (default DATABASE_URL).")
        if det.runtime_candidates:
            w.comment("candidates the app reads: " + ", ".join(det.runtime_candidates))
        w.commented_key("runtime_url_env", det.runtime_candidates[:1] or ["DATABASE_URL"])
    if det.url_scheme_sure:
        w.key("url_scheme", det.url_scheme, det.url_scheme_reason)
    else:
        w.todo(f"{det.url_scheme_reason}: set url_scheme to the SQLAlchemy dialect+driver the target has installed "
               "(default postgresql, i.e. psycopg2); `zerodrift doctor` runs alembic with it.")
        for scheme in det.url_scheme_candidates:
            w.commented_key("url_scheme", scheme, "named in the dependency files")
        if not det.url_scheme_candidates:
            w.commented_key("url_scheme", "postgresql+psycopg")

    w.comment("setup_sql: SQL (or a .sql file) run as the admin role in every throwaway database before its first "
              "migration, for what production creates outside the migrations (extensions, schemas, grants).")
    w.commented_key("setup_sql", "CREATE EXTENSION IF NOT EXISTS pg_trgm;")

    # [server]
    w.raw()
    w.raw("[server]")
    w.comment("version: production's PostgreSQL major; the embedded server runs it (unset: the newest available, and "
              "`zerodrift doctor` warns: catalogs differ between majors).")
    w.commented_key("version", 16)

    # [roles]
    w.raw()
    w.raw("[roles]")
    ensure = [r for r in det.roles if r not in det.created_roles]
    if det.roles:
        w.comment("roles the migrations grant to or make owners (they must exist before the first migration; "
                  "missing ones are created): " + "; ".join(
                      f"{f.name} ({', '.join(f.files[:3])}{' …' if len(f.files) > 3 else ''})" for f in det.roles.values()))
    if det.created_roles:
        w.comment("created by the migrations themselves, so not ensured: " + ", ".join(det.created_roles))
    if ensure:
        w.key("ensure", ensure)
    else:
        w.comment("ensure: roles that must exist before the first migration (none named by a GRANT/OWNER TO in the migrations).")
        w.commented_key("ensure", [])
    runtime, reason, sure = det.runtime_guess()
    if runtime and sure:
        w.comment(f"runtime role: {reason}.")
        w.key("runtime", runtime)
        w.key("login", [runtime])
    elif runtime:
        w.todo(f"check the runtime role (the app's non-superuser login): guessed {runtime} because {reason}.")
        w.key("runtime", runtime)
        w.key("login", [runtime])
    else:
        costs = gates_needing_runtime_role(gates, defaults)
        w.todo(f"name the runtime role (the app's non-superuser login, e.g. app_user): {reason}."
               + (f" Without it {', '.join(costs)} {'is' if len(costs) == 1 else 'are'} SKIPPED." if costs else ""))
        w.commented_key("runtime", "app_user")
    if det.settings_read:
        w.todo(f"the migrations read the settings {', '.join(det.settings_read)} (row-level security, defaults): "
               "if the runtime role's session sets them, give the values it uses.")
        w.commented_key("runtime_settings", {s: "TODO" for s in det.settings_read})

    # gates: each writes its own proposal (Gate.propose_config), in gate order
    for gate in gates.values():
        w.raw()
        _render_gate(w, gate, det)

    w.raw()
    w.raw("# [signing]")
    w.comment("key: Ed25519 private key (OpenSSH) that signs the ledger; create one with `zerodrift keygen PATH`. "
              "In CI give it in ZERODRIFT_SIGNING_KEY instead (see docs/github-actions.md).")
    w.commented_key("key", "~/.config/zerodrift/ledger-key")
    return w.text(), w.todos


def _render_gate(w: _Writer, gate: type, det: Detection) -> None:
    """Write ``gate``'s own proposal (``Gate.propose_config``) into ``w``, contained: one gate's bug
    never stops ``init`` for the others.

    A proposal that raises is replaced by a comment naming the exception and the plugin to report
    it to. A plugin's proposal whose table its own config model rejects is written commented out
    under a comment naming the key, the problem and the plugin (the gate then runs on its defaults);
    a built-in gate's invalid proposal is left for :func:`validate` to refuse. Each such comment is
    also a TODO, so ``init`` lists it."""
    from zerodrift.plugins import plugin_name

    origin = plugin_name(gate)
    author = "zerodrift" if origin == "built-in" else origin
    sub = _Writer()
    try:
        gate.propose_config(InitContext(gate.id, det, sub))
    except Exception as exc:  # a plugin's bug: contained to its own table
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        _problem(w, f"{gate.id}: its propose_config raised {what} — report it to the author of {author}; "
                    f"nothing was proposed for [gates.{gate.id}].")
        return
    problem = "" if origin == "built-in" else _proposal_problem(gate, sub.text())
    if not problem:
        w.lines += sub.lines
        w.todos += sub.todos
        return
    _problem(w, f"{gate.id}: its propose_config (from {origin}) proposed an invalid table, commented out below "
                f"({problem}). This is a bug in {origin}: report it to its author. To run {gate.id} anyway, "
                f"uncomment the table and correct the value (`zerodrift config-reference {gate.id}` shows its keys); "
                f"until then {gate.id} runs on its defaults (`zerodrift doctor` says whether that SKIPs it).")
    w.lines += [line if not line or line.startswith("#") else "# " + line
                for line in "\n".join(sub.lines).split("\n")]


def _problem(w: _Writer, text: str) -> None:
    """A comment in the generated file that is also listed as a TODO."""
    w.todos.append(text)
    w.comment(text)


def _proposal_problem(gate: type, text: str) -> str:
    """Why the TOML ``text`` one gate proposed is not valid for that gate ('' when it is): not
    TOML, or its ``[gates.<id>]`` table rejected by the gate's config model (or, for a gate
    without a model, holding keys)."""
    from pydantic import ValidationError

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return f"not valid TOML: {exc}"
    table = raw.get("gates", {}).get(gate.id)
    if table is None:
        return ""
    try:
        gate.load_config(table)
    except ValidationError as exc:
        lines = format_validation_error("", exc, prefix=f"gates.{gate.id}").splitlines()[1:]
        return "; ".join(line.strip() for line in lines if not line.strip().startswith("(each key"))
    return ""


def _render_alembic_shape(w: _Writer, det: Detection) -> None:
    """``target.flask_app`` and ``target.alembic_runner`` when the code shows them (one candidate
    outside test code), else a TODO naming the candidates."""
    if det.flask_extension:
        apps = [c for c in det.flask_apps if not c.testish]
        w.comment(f"the app uses {det.flask_extension}: alembic jobs run env.py inside its app context. The factory "
                  "must not upgrade the database itself (ZG-1 FAILs when a fresh database is migrated before "
                  "zerodrift's upgrade).")
        if det.flask_extension == "Flask-Alembic":
            w.todo("Flask-Alembic can run migrations without env.py (from the app's ALEMBIC settings); zerodrift runs "
                   "alembic's own commands, which read alembic.ini and run the script folder's env.py: check that "
                   f"{_rel(det.alembic_ini, det.config_dir)} and its env.py are what the app migrates with.")
        if len(apps) == 1:
            w.key("flask_app", apps[0].path)
        else:
            w.todo(f"name the Flask app or its factory (module:create_app) that sets up {det.flask_extension}"
                   + (f"; candidates: {', '.join(c.path for c in apps)}" if apps else ""))
            w.commented_key("flask_app", apps[0].path if apps else "app:create_app")
    if det.needs_runner:
        runners = [c for c in det.runners if not c.testish]
        w.comment(f"{det.needs_runner}: each alembic command runs through this function, called as fn(command, config).")
        if len(runners) == 1:
            w.key("alembic_runner", runners[0].path)
        else:
            w.todo("name the function (module:function) that runs alembic's command as the backend does, "
                   "called as fn(command, config); it must call command(config)"
                   + (f"; candidates: {', '.join(c.path for c in runners)}" if runners else ""))
            w.commented_key("alembic_runner", runners[0].path if runners else "app.migrate:run_alembic")


# -- validation and writing --------------------------------------------------
def validate(text: str, where: str = "generated config") -> Config:
    """Parse ``text`` as TOML and validate it like ``zerodrift run`` does (config and every gate table).

    Returns the Config. Raises UsageError naming the key when it is not valid.
    """
    from pydantic import ValidationError

    from zerodrift.plugins import installed_gates

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML: {exc}") from exc
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(format_validation_error(where, exc)) from exc
    gates = {g.upper(): cls for g, cls in installed_gates().items()}
    for key, table in config.gates.items():
        gate = gates.get(key.upper())
        if gate is not None and gate.config_model is not None:
            try:
                gate.config_model.model_validate(table)
            except ValidationError as exc:
                raise UsageError(format_validation_error(where, exc, prefix=f"gates.{key}")) from exc
    return config


def init_config(target: Path, *, write: bool = True, force: bool = False) -> InitResult:
    """Detect, render and (when ``write``) write ``zerodrift.toml`` next to the alembic.ini found under ``target``.

    Returns an :class:`InitResult`. Raises UsageError (exit 2) when nothing can be
    detected, or when the file exists (or the folder's pyproject.toml has a
    ``[tool.zerodrift]`` section) and ``force`` is not set.
    """
    det = detect(target)
    text, todos = render(det)
    validate(text)
    path = det.config_dir / CONFIG_FILENAME
    written = False
    if write:
        pyproject = det.config_dir / "pyproject.toml"
        if path.exists() and not force:
            raise UsageError(f"{path} exists; not overwritten. Use --force to replace it, or --stdout to print the new one.")
        if not force and pyproject.is_file() and re.search(r"^\[tool\.zerodrift", pyproject.read_text(encoding="utf-8", errors="replace"), re.M):
            raise UsageError(f"{pyproject} already has a [tool.zerodrift] section; a new {CONFIG_FILENAME} would take its "
                             "place. Use --force to write it anyway, or --stdout to print it.")
        path.write_text(text, encoding="utf-8")
        written = True
    return InitResult(text=text, path=path, written=written, detection=det, todos=todos)
