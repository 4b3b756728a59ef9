"""What a gate sees when it takes part in ``zerodrift init`` and ``zerodrift doctor``.

Every gate, built-in or third-party, owns its onboarding through four class methods
of :class:`zerodrift.gates.base.Gate` (they are plain methods, not pluggy hooks: the
gate class is already the unit a plugin registers, so overriding a method is all a
plugin author does):

* ``Gate.propose_config(init: InitContext)`` — ``zerodrift init`` calls it, in gate
  order, to write the gate's proposed ``[gates.<id>]`` table: active keys only for
  what was verified, a ``# TODO:`` for each decision left to the user, the rest as
  comments. ``init.facts`` is what the shared detection found (:class:`InitFacts`).
  ``init`` contains each proposal: one that raises, or a plugin's table its own config
  model rejects, becomes a comment naming the problem and the plugin.
* ``Gate.skip_reason(cfg, loaded)`` — why the gate would be SKIPPED with this config
  ('' when it runs). The runner asks it before ``run`` (a reason is the gate's SKIPPED
  and ``run`` is not called), and ``doctor`` reports the same reason, so the two cannot
  disagree.
* ``Gate.target_imports(cfg)`` / ``Gate.target_modules(cfg)`` — the objects
  (:class:`TargetImport`) and modules the gate will import in the target's
  interpreter; ``doctor`` imports them there and reports each.
* ``Gate.doctor(doc: DoctorContext)`` — any other check of the setup the gate needs
  (files its config names, git refs), as findings with a level, a verdict and a fix.

This module holds only the small interface types; the shared detection stays in
:mod:`zerodrift.onboard.init`, the shared doctor checks in :mod:`zerodrift.onboard.doctor`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from zerodrift.config import LoadedConfig
    from zerodrift.onboard.init import AppModule, Candidate, RefreshCandidate
    from zerodrift.onboard.squash import SquashedBase
    from zerodrift.provenance import Provenance

#: Levels of a doctor finding.
OK, WARN, FAIL = "OK", "WARN", "FAIL"
#: Type names (``type(obj).__name__``) of an imported object that is a function.
FUNCTION_KINDS = ("function", "method", "builtin_function_or_method")


class InitFacts(Protocol):
    """The shared detection facts a gate may read in ``propose_config`` (a read-only view of
    :class:`zerodrift.onboard.init.Detection`; nothing else of it is promised).

    Candidates (``Candidate``) are ``module:attribute`` paths found in the application's
    code, best first; :meth:`problem` says whether one may be written as active config.
    """

    config_dir: Path  #: the folder zerodrift.toml goes in; relative paths are from here
    git_root: Path | None  #: the repository holding it, if any
    revisions: list[str]  #: revision ids of the history, oldest first
    heads: list[str]  #: head revisions of the history
    seed_files: list[Path]  #: ``*seed*.sql`` files outside the migrations
    squashed_base: SquashedBase | None  #: a first revision that looks like a squash, with the release before it
    matviews: list[str]  #: materialized views the migrations create
    migration_sql: list[tuple[str, str]]  #: (file name, SQL text): the migrations' SQL strings, in file order
    worker_settings: dict[str, str]  #: setting → value a write guard in the migrations is keyed on
    guard_sqlstate: str  #: the SQLSTATE that guard raises ('' when not found)
    guard_message: str  #: a regular expression of its message ('' when not found)
    guard_tables: list[str]  #: the tables its trigger is on
    celery_apps: list[Candidate]  #: module-level ``x = Celery(...)``
    registries: list[Candidate]  #: module-level lists/tuples named like a matview registry (``value``: the names)
    refreshers: list[RefreshCandidate]  #: ``refresh*`` functions that mention an advisory lock
    app_modules: list[AppModule]  #: the application's parsed Python modules, in file order, for a gate's own search

    def problem(self, kind: str, cand: Candidate) -> str:
        """Why ``cand`` may not be active config ('' when it may); ``kind`` is ``celery``,
        ``registry`` or ``callable`` (the shape the target's interpreter must give)."""
        ...


class ConfigWriter(Protocol):
    """The commented-TOML writer of ``zerodrift init`` (lines are wrapped; blank lines collapse)."""

    def comment(self, text: str) -> None: ...

    def todo(self, text: str) -> None:
        """A ``# TODO:`` comment; it is also listed at the end of ``zerodrift init``."""

    def key(self, key: str, value: Any, note: str = "") -> None:
        """An active ``key = value`` line (value as a TOML literal)."""

    def commented_key(self, key: str, value: Any, note: str = "") -> None:
        """A ``# key = value`` line: a proposal the user uncomments."""

    def raw(self, line: str = "") -> None: ...


class InitContext:
    """What ``Gate.propose_config`` receives: the detection facts and a writer for one gate.

    Writes go to the generated file in gate order; the generated text is validated with
    the gates' config models before it is written, so an active key must be valid (a
    plugin's table its own model rejects is written commented out, naming the problem).
    """

    def __init__(self, gate_id: str, facts: InitFacts, writer: ConfigWriter) -> None:
        self.gate_id = gate_id
        self.facts = facts
        self._w = writer

    # -- writing -----------------------------------------------------------------
    def comment(self, text: str) -> None:
        self._w.comment(text)

    def todo(self, text: str) -> None:
        self._w.todo(text)

    def key(self, key: str, value: Any, note: str = "") -> None:
        self._w.key(key, value, note)

    def commented_key(self, key: str, value: Any, note: str = "") -> None:
        self._w.commented_key(key, value, note)

    def raw(self, line: str = "") -> None:
        self._w.raw(line)

    def table(self, sub: str = "", *, commented: bool = False, array: bool = False) -> None:
        """The gate's table header: ``[gates.<id>]``, or ``[gates.<id>.<sub>]`` / ``[[gates.<id>.<sub>]]``
        (``array``); ``commented`` writes it as ``# [...]`` (the gate stays SKIPPED until uncommented)."""
        name = f"gates.{self.gate_id}" + (f".{sub}" if sub else "")
        self._w.raw(("# " if commented else "") + (f"[[{name}]]" if array else f"[{name}]"))

    # -- helpers -----------------------------------------------------------------
    def rel(self, path: Path) -> str:
        """``path`` relative to the config file's folder, with ``/`` separators."""
        return Path(os.path.relpath(path, self.facts.config_dir)).as_posix()

    def verified(self, kind: str, cands: list[Candidate], key: str) -> list[Candidate]:
        """The candidates that may be active config (:meth:`InitFacts.problem`). When there are
        candidates but none may, writes a TODO naming why each did not check out and the first
        one as ``key`` under a commented-out table."""
        usable = [c for c in cands if not self.facts.problem(kind, c)]
        if cands and not usable:
            self.todo(f"{key} candidates did not check out, so {self.gate_id} stays SKIPPED: " + "; ".join(
                f"{c.path}: {self.facts.problem(kind, c)}" for c in cands[:3]))
            self.table(commented=True)
            self.commented_key(key, cands[0].path)
        return usable


@dataclass
class TargetImport:
    """An object a gate imports in the target's interpreter, for ``doctor`` to try.

    ``label`` names the finding (e.g. ``registry``), ``key`` the config key holding
    ``path`` (``module:attribute``). ``judge(kind, value)`` gets the imported object's
    type name and, for a list of strings, its value; it returns ``(level, verdict)``, or
    None for the default ``OK  <label>: <path> imports (<kind>)``.
    """

    label: str
    key: str
    path: str
    judge: Callable[[str, Any], tuple[str, str] | None] | None = None


@dataclass
class DoctorContext:
    """What ``Gate.doctor`` receives: the loaded config, the gate's own (validated) config and
    a way to report findings. ``provenance`` is the git state of the target (collected once)."""

    gate_id: str
    loaded: LoadedConfig
    cfg: Any  #: the gate's config model instance (None for a gate without one)
    provenance: Provenance | None
    _add: Callable[[str, str, str, str], Any] = field(repr=False, default=lambda *a: None)

    def add(self, level: str, check: str, verdict: str, fix: str = "") -> None:
        """Report one finding: ``level`` is OK, WARN or FAIL; ``fix`` says what to do."""
        self._add(level, check, verdict, fix)


# -- shared by init and doctor -----------------------------------------------------
def gate_config(gate: type, loaded: LoadedConfig) -> Any:
    """``gate``'s config model instance for its ``[gates.<id>]`` table in ``loaded`` (None for a gate
    without a model; :meth:`zerodrift.gates.base.Gate.load_config`). Raises pydantic.ValidationError
    when the table is not valid."""
    return gate.load_config(loaded.gate_table(gate.id))


def skipped_gates(gates: dict[str, type], loaded: LoadedConfig,
                  failures: dict[str, str] | None = None) -> dict[str, str]:
    """Gate id → why it would be SKIPPED with ``loaded`` (``Gate.skip_reason``), for the gates that
    would. A gate whose table is invalid or whose ``skip_reason`` raises is left out, and what went
    wrong is put in ``failures`` (gate id → text) when given: one plugin's bug never stops the others."""
    out = {}
    for gid, gate in gates.items():
        try:
            reason = gate.skip_reason(gate_config(gate, loaded), loaded)
        except Exception as exc:  # pydantic's ValidationError included: doctor reports the table itself
            if failures is not None:
                failures[gid] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            continue
        if reason:
            out[gid] = reason
    return out


def gates_needing_runtime_role(gates: dict[str, type], loaded: LoadedConfig) -> list[str]:
    """Ids of the gates SKIPPED with ``loaded`` that would run if ``roles.runtime`` were set:
    what a missing runtime role costs, asked of each gate's own skip rule."""
    config = loaded.config
    with_role = loaded.model_copy(update={"config": config.model_copy(
        update={"roles": config.roles.model_copy(update={"runtime": config.roles.runtime or "runtime_role"})})})
    now, then = skipped_gates(gates, loaded), skipped_gates(gates, with_role)
    return [gid for gid in now if gid not in then]
