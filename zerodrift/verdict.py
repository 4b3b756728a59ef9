"""The overall verdict of a run, computed in one place.

Every output reads this: the ledger's first line, ``ledger.json`` (``verdict``,
``overall``, ``exit_code``), JUnit's suite properties, the GitHub job summary, the
in-toto attestation's ``result`` and ``zerodrift verify --require-pass``.

Rules (most serious first):

* **FAIL** — a selected gate is FAIL or ERROR (an ERROR proves nothing either).
* **INCOMPLETE** — none failed, but a selected gate is SKIPPED (its inputs are not
  configured, or none of its checks could be asserted), or a *required* gate was not
  selected for this run. The skipped and missing gates are named in the headline.
* **PASS** — every selected gate passed and every required gate ran. A run of a
  ``--gate`` subset is a PASS *of a partial run* (``partial`` is true; the gates not
  run are listed); ``verify --require-pass`` refuses partial runs.

Exit codes: PASS 0; FAIL 1, or 3 when every failing gate is an ERROR of the
environment (server, interpreter, git history); INCOMPLETE 0, unless a required gate
(config ``required_gates``, or ``--require GATE`` / ``--require all``) was skipped or
not run, then 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zerodrift.errors import EXIT_ENVIRONMENT, EXIT_GATE_FAILED, EXIT_OK

PASS, INCOMPLETE, FAIL = "PASS", "INCOMPLETE", "FAIL"

#: in-toto test-result predicate ``result`` for each verdict (test-result v0.1 knows
#: PASSED, WARNED and FAILED: an incomplete proof is a warning, never a pass).
ATTESTATION_RESULT = {PASS: "PASSED", INCOMPLETE: "WARNED", FAIL: "FAILED"}


@dataclass(frozen=True)
class GateOutcome:
    """What the verdict needs of one selected gate: its id, status (PASS, FAIL, ERROR,
    SKIPPED), whether an ERROR came from the environment, and why it was skipped."""

    id: str
    status: str
    environment_error: bool = False
    reason: str = ""


@dataclass
class Verdict:
    """The overall verdict (``overall`` is PASS, INCOMPLETE or FAIL) and its reasons.

    ``skipped`` maps each SKIPPED gate to its reason; ``required_missing`` lists the
    required gates that were skipped or not run; ``exit_code`` is the process exit
    status the rules in the module docstring give.
    """

    overall: str
    exit_code: int
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    #: the gates in ``failed`` whose status is ERROR (the target's setup, not a finding)
    failed_in_error: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    required_missing: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when some installed gate was not selected for this run."""
        return bool(self.not_run)

    @property
    def headline(self) -> str:
        """One line: the verdict and what made it so, e.g. ``INCOMPLETE: ZG-2 skipped (…)``."""
        return f"{self.overall}: {self.reason}"

    @property
    def reason(self) -> str:
        """What made the verdict, without the verdict word (the headline's second part)."""
        if self.overall == FAIL:
            parts = []
            findings = [g for g in self.failed if g not in self.failed_in_error]
            if findings:
                parts.append(f"{', '.join(findings)} failed")
            if self.failed_in_error:
                parts.append(f"{', '.join(self.failed_in_error)} ended in ERROR")
            if self.errored:
                parts.append(f"{', '.join(self.errored)} could not run (ERROR)")
            text = "; ".join(parts)
        elif self.overall == INCOMPLETE:
            parts = [f"{gid} skipped ({reason})" if reason else f"{gid} skipped" for gid, reason in self.skipped.items()]
            missing_not_run = [g for g in self.required_missing if g in self.not_run]
            if missing_not_run:
                parts.append(f"required {', '.join(missing_not_run)} not run")
            text = "; ".join(parts)
        else:
            text = f"all {len(self.passed)} selected gates passed"
        if self.partial:
            text += f"; partial run, not run: {', '.join(self.not_run)}"
        if self.required_missing:
            text += f"; required but not proven: {', '.join(self.required_missing)} (exit 1)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored under ``verdict`` in ledger.json."""
        data = asdict(self)
        data["headline"] = self.headline
        data["reason"] = self.reason
        data["partial"] = self.partial
        data["attestation_result"] = ATTESTATION_RESULT[self.overall]
        return data


def resolve_required(required: Iterable[str], installed: Iterable[str]) -> list[str]:
    """Gate ids a run must prove: ``all`` stands for every installed gate; ids match
    case-insensitively. Raises ValueError naming an id no installed gate has."""
    installed = list(installed)
    by_upper = {g.upper(): g for g in installed}
    out: list[str] = []
    for name in required:
        if name.strip().lower() == "all":
            out.extend(installed)
        elif name.upper() in by_upper:
            out.append(by_upper[name.upper()])
        else:
            raise ValueError(f"required gate {name!r} is not installed (installed: {', '.join(installed)}; or 'all')")
    return list(dict.fromkeys(out))


def compute_verdict(gates: Iterable[GateOutcome], *, not_run: Iterable[str] = (),
                    required: Iterable[str] = ()) -> Verdict:
    """The verdict of a run from its selected gates' outcomes.

    ``not_run`` lists installed gates this run did not select; ``required`` the gate ids
    (already resolved, see :func:`resolve_required`) that must have passed for exit 0.
    Raises nothing.
    """
    gates = list(gates)
    not_run = list(not_run)
    required = list(required)
    passed = [g.id for g in gates if g.status == "PASS"]
    failed = [g.id for g in gates if g.status == "FAIL" or (g.status == "ERROR" and not g.environment_error)]
    env_errors = [g.id for g in gates if g.status == "ERROR" and g.environment_error]
    failed_in_error = [g.id for g in gates if g.status == "ERROR" and not g.environment_error]
    skipped = {g.id: g.reason for g in gates if g.status == "SKIPPED"}
    required_missing = [gid for gid in required if gid in skipped or gid in not_run
                        or gid not in {g.id for g in gates}]
    if failed or env_errors:
        overall = FAIL
        code = EXIT_GATE_FAILED if failed else EXIT_ENVIRONMENT
    elif skipped or required_missing:
        overall = INCOMPLETE
        code = EXIT_GATE_FAILED if required_missing else EXIT_OK
    else:
        overall, code = PASS, EXIT_OK
    return Verdict(overall=overall, exit_code=code, passed=passed,
                   failed=failed, errored=env_errors, failed_in_error=failed_in_error, skipped=skipped, not_run=not_run,
                   required=required, required_missing=required_missing)


def verdict_from_ledger(data: Mapping[str, Any]) -> Verdict:
    """Recompute the verdict from a ledger dict (``ledger.json``): its gates' statuses,
    ``not_run`` and ``required_gates``. ``verify`` compares it with the recorded one."""
    outcomes = [GateOutcome(g["id"], g["status"], bool(g.get("environment_error")),
                            g.get("summary", "")) for g in data.get("gates", [])]
    return compute_verdict(outcomes, not_run=data.get("not_run", []), required=data.get("required_gates", []))
