"""Gate, check, evidence and result types shared by every gate and the runner.

A **gate** holds **checks**; each check asserts one fact and is PASS, FAIL or SKIPPED.
An **evidence step** records one thing that was run (a SQL statement, an alembic
command, a probe) with role, database, duration, exit status and output tail.
The gate's status is derived, never set by hand (docs/architecture.md, "Verdict
rules"): ERROR when the gate could not run, FAIL when any check failed, SKIPPED when
no check ran, PASS only when at least one check passed and none failed.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from zerodrift.config import LoadedConfig
    from zerodrift.context import GateContext
    from zerodrift.onboard.hooks import DoctorContext, InitContext, TargetImport

#: Characters kept from the end of a step's output.
OUTPUT_TAIL_CHARS = 4000

#: Facts a gate may publish for the ledger's header (``GateResult.publish_header``), by name.
#: A gate lists the ones it publishes in ``Gate.header_facts``; the first result (in gate
#: order) that published a name gives the header its value.
HEADER_FACTS = {
    "schema_fingerprint": "sha256 of the canonical catalog snapshot of a fresh database at head",
    "heads": "head revision(s) of the migration history",
    "schema_snapshot": "the attached catalog snapshot the schema fingerprint is the SHA-256 of: its path in the proof "
                       "pack (<gate id>/<file>), from which the ledger's recompute command reads it",
}


def truncated(text: str, keep_chars: int) -> str:
    """The last ``keep_chars`` characters of ``text`` after a line saying how much was cut,
    e.g. ``[… 1,048,576 bytes omitted …]`` (UTF-8 bytes of the part left out)."""
    if len(text) <= keep_chars:
        return text
    cut = text[:len(text) - keep_chars]
    return f"[… {len(cut.encode('utf-8')):,} bytes omitted …]\n" + text[-keep_chars:]


class Status(str, enum.Enum):
    """Outcome of a gate or a check."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"


@dataclass
class EvidenceStep:
    """One thing that was run, as the ledger shows it.

    ``command`` is display text with any password masked; ``env`` holds only the
    names of environment variables that were set, never their values;
    ``duration_s`` is wall time in seconds; ``exit_status`` is the exit status of the
    process the step ran, as observed — None when the step ran no process of its own
    (a SQL statement, a catalog read) or its status was not observed: it is then
    shown as "no exit status", never as a made-up 0, and the outcome is in ``output``.
    """

    title: str
    command: str
    role: str = ""
    database: str = ""
    duration_s: float = 0.0
    exit_status: int | None = None
    output: str = ""
    env: list[str] = field(default_factory=list)

    @property
    def status_text(self) -> str:
        """``exit N`` for an observed exit status, ``no exit status`` otherwise."""
        return "no exit status" if self.exit_status is None else f"exit {self.exit_status}"

    def __post_init__(self) -> None:
        if len(self.output) > OUTPUT_TAIL_CHARS:
            self.output = truncated(self.output, OUTPUT_TAIL_CHARS)


@dataclass
class Check:
    """One asserted fact: ``status`` plus what was expected and what was found."""

    name: str
    status: Status
    detail: str = ""


@dataclass
class GateResult:
    """What a gate reports: checks, evidence steps and attachments.

    ``attachments`` maps a file name to bytes written into the proof pack under the
    gate's folder (catalog snapshots, diffs). ``error`` makes the gate ERROR;
    ``environment_error`` marks an error of the machine (exit 3), not of the target.
    """

    gate_id: str
    title: str
    checks: list[Check] = field(default_factory=list)
    evidence: list[EvidenceStep] = field(default_factory=list)
    attachments: dict[str, bytes] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)  #: {"title", "columns", "rows"} shown as tables
    error: str = ""
    environment_error: bool = False
    skip_reason: str = ""
    #: facts for the ledger's header (names from HEADER_FACTS), see publish_header
    header: dict[str, Any] = field(default_factory=dict)
    #: what a PASS proved, in one line, for the gate table; shown only when the gate PASSes, and
    #: built from what the checks asserted (counts taken from them, never a claim no check made)
    headline: str = ""
    duration_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # -- recording -------------------------------------------------------
    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        """Record a check that passed or failed; returns ``passed``."""
        with self._lock:
            self.checks.append(Check(name, Status.PASS if passed else Status.FAIL, detail))
        return passed

    def skip_check(self, name: str, reason: str) -> None:
        """Record a check that could not be asserted, with the reason."""
        with self._lock:
            self.checks.append(Check(name, Status.SKIPPED, reason))

    def add_step(self, step: EvidenceStep) -> EvidenceStep:
        with self._lock:
            self.evidence.append(step)
        return step

    def add_steps(self, steps: list[EvidenceStep]) -> None:
        with self._lock:
            self.evidence.extend(steps)

    def add_table(self, title: str, columns: list[str], rows: list[list[Any]], *, summary: str = "",
                  blocks: list[dict[str, str]] | None = None, collapsed: bool = False) -> None:
        """A table for the ledger (e.g. a table × operation × role matrix).

        ``summary`` is a line shown above it (e.g. counts); ``blocks`` are texts shown
        below it, each ``{"title", "text", "lang"}`` in its own collapsible section (a
        unified diff: ``lang="diff"``); ``collapsed`` puts the table itself in one."""
        with self._lock:
            self.tables.append({"title": title, "columns": columns, "rows": rows, "summary": summary,
                                "blocks": list(blocks or []), "collapsed": collapsed})

    def publish_header(self, name: str, value: Any) -> None:
        """Offer ``value`` as the run's ``name`` in the ledger's header (a name of
        :data:`HEADER_FACTS`; ValueError for any other)."""
        if name not in HEADER_FACTS:
            raise ValueError(f"{name!r} is not a ledger header fact (known: {', '.join(HEADER_FACTS)})")
        with self._lock:
            self.header[name] = value

    def fail_with_error(self, message: str, *, environment: bool = False) -> None:
        """Mark the gate ERROR: it could not run; ``message`` says why."""
        self.error = message
        self.environment_error = environment

    def skip(self, reason: str) -> None:
        """Mark the whole gate SKIPPED (its inputs are not configured)."""
        self.skip_reason = reason

    # -- derived ---------------------------------------------------------
    @property
    def status(self) -> Status:
        if self.error:
            return Status.ERROR
        if any(c.status is Status.FAIL for c in self.checks):
            return Status.FAIL
        if self.skip_reason or not any(c.status is Status.PASS for c in self.checks):
            return Status.SKIPPED
        return Status.PASS

    @property
    def summary(self) -> str:
        """One line for the gate table."""
        status = self.status
        if status is Status.ERROR:
            return self.error.splitlines()[0] if self.error else "error"
        if status is Status.SKIPPED:
            return self.skip_reason or "no check could be asserted"
        failed = [c for c in self.checks if c.status is Status.FAIL]
        if failed:
            return "; ".join(f"{c.name}: {c.detail.splitlines()[0] if c.detail else 'failed'}" for c in failed[:3])
        passed = [c for c in self.checks if c.status is Status.PASS]
        skipped = [c for c in self.checks if c.status is Status.SKIPPED]
        text = f"{len(passed)} check{'' if len(passed) == 1 else 's'} passed"
        if skipped:  # named: a skipped check is a fact the PASS does not include
            names = ", ".join(c.name for c in skipped[:3]) + (" …" if len(skipped) > 3 else "")
            text += f", {len(skipped)} skipped: {names}"
        return f"{self.headline} ({text})" if self.headline else text


@dataclass(frozen=True)
class Input:
    """One artifact a gate reads, as declared in :attr:`Gate.inputs` (docs/architecture.md,
    "Scheduling"; the rule is implemented in :mod:`zerodrift.scheduling`).

    ``name``: the artifact (e.g. ``"db.fresh"``), published by the gate whose ``provides``
    names it. ``optional``: False (default) — selecting this gate selects the gate that
    provides the input, and an input no installed gate provides is a UsageError; True —
    the input is read only when a selected gate provides it (it orders, never selects).
    ``at_start``: True (default) — the gate starts once the input exists or is known
    unavailable (its producer ended without it, or no selected gate provides it); False —
    the gate starts without it and waits when it reads it (``ctx.require``), for an input
    needed only late (ZG-2 builds its own database alongside ZG-1 and needs ZG-1's
    snapshot only to compare at the end).
    """

    name: str
    optional: bool = False
    at_start: bool = True


class Gate:
    """Base class of every gate, built-in or third-party (docs/architecture.md, "Writing a gate").

    Subclasses set ``id``, ``title``, optionally ``config_model`` (a pydantic model for
    their ``[gates.<id>]`` table), and implement :meth:`run`. What a gate exchanges with
    others is declared, and decides when it starts (docs/architecture.md, "Scheduling"):

    * ``inputs``: the artifacts it reads — a name (``"db.fresh"``: required, needed to
      start) or an :class:`Input` (optional, or read later);
    * ``provides``: the artifacts it publishes (``ctx.artifacts.publish``);
    * ``needs``: resources the runner provisions before any gate starts (``"git"``,
      ``"server"``, ``"target"``); they never delay a gate.

    Gates written before ``inputs`` existed may still set ``requires`` (required inputs),
    ``optional_requires`` (optional inputs, read later) and ``starts_after`` (the required
    inputs needed to start; None: all of them): :meth:`declared_inputs` reads them.
    The docstring of a gate class is what ``zerodrift gates`` shows.

    A gate also owns its onboarding (:mod:`zerodrift.onboard.hooks`): what
    ``zerodrift init`` proposes for its table (:meth:`propose_config`), when it would be
    SKIPPED (:meth:`skip_reason`, used by ``run`` and ``doctor`` alike), what ``doctor``
    imports in the target's interpreter for it (:meth:`target_imports`,
    :meth:`target_modules`) and its other doctor checks (:meth:`doctor`); and what it
    publishes for the ledger's header (:attr:`header_facts`, ``GateResult.publish_header``).
    Every default does nothing, so a gate needs none of them to run.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[BaseModel] | None] = None
    inputs: ClassVar[tuple[str | Input, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()
    #: names of :data:`HEADER_FACTS` this gate publishes (``GateResult.publish_header``)
    header_facts: ClassVar[tuple[str, ...]] = ()
    #: the key of its table that takes ``zerodrift run --from-ref REF`` as ``{"from_ref": REF}``
    #: entries (upgrade paths built from a git ref); '' (default): the gate takes none
    from_ref_key: ClassVar[str] = ""

    @classmethod
    def declared_inputs(cls) -> tuple[Input, ...]:
        """Every input of the gate as an :class:`Input`, in declaration order: ``inputs``
        (a bare name is a required input needed to start), then the older attributes
        ``requires``/``starts_after``/``optional_requires`` of gates that still set them.
        Raises TypeError for an entry that is neither a name nor an Input."""
        declared: list[Input] = []
        for item in cls.inputs:
            if isinstance(item, str):
                declared.append(Input(item))
            elif isinstance(item, Input):
                declared.append(item)
            else:
                raise TypeError(f"gate {cls.id}: inputs holds {item!r}; give artifact names or Input(...)")
        starts_after = getattr(cls, "starts_after", None)
        declared += [Input(name, at_start=starts_after is None or name in starts_after)
                     for name in getattr(cls, "requires", ())]
        declared += [Input(name, optional=True, at_start=False) for name in getattr(cls, "optional_requires", ())]
        first: dict[str, Input] = {}
        for item in declared:  # a name declared twice: its first declaration counts
            first.setdefault(item.name, item)
        return tuple(first.values())

    @classmethod
    def load_config(cls, table: dict[str, Any]) -> Any:
        """The gate's ``[gates.<id>]`` ``table`` validated by its ``config_model``: the model
        instance, or None for a gate without one, whose table must then be empty (it takes no
        keys). Raises pydantic.ValidationError naming the bad or unknown key."""
        if cls.config_model is None:
            GateConfig.model_validate(table)
            return None
        return cls.config_model.model_validate(table)

    def run(self, ctx: GateContext, result: GateResult) -> None:  # pragma: no cover - interface
        """Run the checks, recording them and their evidence on ``result``."""
        raise NotImplementedError

    # -- onboarding (zerodrift init / doctor) ------------------------------------
    @classmethod
    def skip_reason(cls, cfg: Any, loaded: LoadedConfig) -> str:
        """Why this gate is SKIPPED with ``cfg`` (its ``config_model`` instance, or None) and the
        run's config, as the ledger shows it; '' when the gate would run. Default: ''."""
        return ""

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """Write the proposed ``[gates.<id>]`` table for ``zerodrift init`` from ``init.facts``:
        active keys only for what was verified, ``init.todo`` for what the user must decide,
        commented-out keys otherwise. Default: nothing (the gate runs on its defaults)."""

    @classmethod
    def target_modules(cls, cfg: Any) -> dict[str, str]:
        """Modules the target's interpreter must import for this gate, each with why
        (e.g. ``{"celery": "ZG-5 runs celery beat"}``); ``doctor`` FAILs when one does not import."""
        return {}

    @classmethod
    def target_imports(cls, cfg: Any) -> list[TargetImport]:
        """Objects (``module:attribute``) of the target this gate imports; ``doctor`` imports each
        in the target's interpreter and reports it."""
        return []

    @classmethod
    def doctor(cls, doc: DoctorContext) -> None:
        """Further checks of this gate's setup for ``zerodrift doctor`` (files and refs its config
        names), reported with ``doc.add(level, check, verdict, fix)``. Default: none."""


class GateConfig(BaseModel):
    """Base for gate config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def timed() -> "_Timer":
    """A tiny stopwatch: ``t = timed(); ...; t.elapsed`` (seconds)."""
    return _Timer()


class _Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
