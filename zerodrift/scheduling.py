"""Which gates run and when each starts: one rule, from the inputs gates declare.

The rule (docs/architecture.md, "Scheduling"). Every gate declares the artifacts it
reads (:attr:`zerodrift.gates.base.Gate.inputs`, as :class:`~zerodrift.gates.base.Input`)
and those it publishes (``provides``):

1. **Selection** (:func:`select_gates`): the gates asked for, plus — transitively — the
   provider of each *required* input of a gate that will run (a gate its ``skip_reason``
   SKIPs with this config adds none). An *optional* input never adds a gate. A required
   input no installed gate provides is a UsageError.
2. **Order**: a selected gate comes after the selected providers of all its inputs
   (required or optional); a cycle among them is a UsageError. Results are listed, and
   gates are offered to the workers, in this order.
3. **Start** (:class:`Scheduler`): a gate starts, as soon as a worker is free, once each
   of its inputs declared ``at_start`` is *ready*: published, or known unavailable (its
   producer ended without publishing it, or no selected gate provides it). An input
   declared ``at_start=False`` is waited for only when the gate reads it.
4. **Reading** (``ctx.require`` / ``ctx.artifacts.require``): returns the value, waiting
   while its producer runs; an unavailable input raises
   :class:`~zerodrift.errors.ArtifactUnavailable`, which the gate turns into an ERROR
   (``ctx.require``) or a SKIPPED check — the gate still runs and says why.

Besides inputs, gates that change a shared database (take locks, refresh, write) hold
``ctx.artifacts.exclusive(db.name)`` while they do, so two gates never disturb each
other's proof; ``needs`` (git, server, target) only says what the runner provisions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor

from zerodrift.context import ArtifactStore
from zerodrift.errors import RunInterrupted, UsageError
from zerodrift.gates.base import Gate, GateResult

#: Seconds between checks of the interruption flag while the scheduler waits for a change.
POLL_S = 0.5


def providers_of(gates: dict[str, type[Gate]]) -> dict[str, str]:
    """Artifact name → id of the gate (among ``gates``) that provides it."""
    return {name: gid for gid, gate in gates.items() for name in gate.provides}


def select_gates(available: dict[str, type[Gate]], wanted: list[str],
                 skipped: Collection[str] = ()) -> tuple[list[type[Gate]], list[str]]:
    """The gates to run, in dependency order, and the ids added only as providers of
    required inputs (rules 1 and 2 above). ``wanted`` holds gate ids (any case); empty
    means every installed gate. The inputs of the gates in ``skipped`` (ids the runner
    found SKIPPED by their own ``skip_reason``) add no provider: a gate that will not
    run needs nothing made for it.

    Raises UsageError for an unknown gate id, a required input no installed gate
    provides, or a cycle among the selected gates' inputs.
    """
    by_upper = {gid.upper(): gid for gid in available}
    if wanted:
        unknown = [w for w in wanted if w.upper() not in by_upper]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0].upper(), list(available), n=1)
            raise UsageError(f"unknown gate id {', '.join(unknown)}; " + (f"did you mean {close[0]}? " if close else "")
                             + f"installed gates: {', '.join(available)} (see `zerodrift gates`)")
        chosen = {by_upper[w.upper()] for w in wanted}
    else:
        chosen = set(available)
    providers = providers_of(available)
    added: list[str] = []
    stack = list(chosen)
    while stack:
        gid = stack.pop()
        if gid in skipped:
            continue
        for need in available[gid].declared_inputs():
            if need.optional:
                continue
            if need.name not in providers:
                raise UsageError(f"gate {gid} requires {need.name!r}, which no installed gate provides: install the "
                                 "plugin that provides it, or leave the gate out (--gate)")
            provider = providers[need.name]
            if provider not in chosen:
                chosen.add(provider)
                added.append(provider)
                stack.append(provider)
    ordered: list[str] = []
    visiting: list[str] = []

    def visit(gid: str) -> None:
        if gid in ordered:
            return
        if gid in visiting:
            cycle = visiting[visiting.index(gid):] + [gid]
            raise UsageError(f"gate dependency cycle through {gid} ({' → '.join(cycle)}): each of these gates reads "
                             "an artifact the next one provides; leave one out (--gate) or fix its inputs")
        visiting.append(gid)
        for need in available[gid].declared_inputs():
            provider = providers.get(need.name)
            if provider in chosen:
                visit(provider)
        visiting.pop()
        ordered.append(gid)

    for gid in available:  # stable: registry order, providers first
        if gid in chosen:
            visit(gid)
    return [available[g] for g in ordered], sorted(added)


class Scheduler:
    """Runs ``gates`` (in the order :func:`select_gates` returned) on ``parallelism``
    worker threads, starting each by rule 3 above.

    ``execute(gate)`` runs one gate and returns its result; it must call
    ``artifacts.gate_finished`` when the gate ends (whatever happened), which makes what
    the gate did not publish known unavailable.
    """

    def __init__(self, gates: list[type[Gate]], artifacts: ArtifactStore,
                 execute: Callable[[type[Gate]], GateResult], parallelism: int) -> None:
        self.gates = gates
        self.artifacts = artifacts
        self.execute = execute
        self.parallelism = max(1, parallelism)
        self.futures: dict[str, Future[GateResult]] = {}

    def can_start(self, gate: type[Gate]) -> bool:
        """True when every input ``gate`` needs to start is ready (published or known unavailable)."""
        return all(self.artifacts.ready(i.name) for i in gate.declared_inputs() if i.at_start)

    def run(self) -> dict[str, GateResult]:
        """Run every gate; returns the results by gate id.

        On Ctrl-C/SIGTERM (a KeyboardInterrupt in this thread) the gates are told to stop
        waiting (``artifacts.cancelled``), nothing more starts, running gates are not
        waited for, and :class:`~zerodrift.errors.RunInterrupted` is raised naming the
        gates interrupted, finished and not started. Any other exception propagates
        after the same.
        """
        pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="gate")
        try:
            pending = list(self.gates)
            seen = self.artifacts.changes()
            while pending:
                for gate in [g for g in pending if self.can_start(g)]:
                    self.futures[gate.id] = pool.submit(self.execute, gate)
                    pending.remove(gate)
                if pending:
                    seen = self.artifacts.wait_for_change(seen, POLL_S)
            results = {gid: future.result() for gid, future in self.futures.items()}
            pool.shutdown(wait=True)
            return results
        except BaseException as exc:
            # interrupted: tell gates to stop waiting, do not wait for them; the runner's
            # clean-up drops the databases (ending their sessions) and stops the server
            self.artifacts.cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
                raise self.interrupted(exc) from exc
            raise

    def interrupted(self, exc: KeyboardInterrupt) -> RunInterrupted:
        """What an interruption stopped: gates running (neither FAIL nor ERROR), finished
        (with their status), and not started."""
        finished = {gid: f.result().status.value for gid, f in self.futures.items()
                    if f.done() and not f.cancelled() and f.exception() is None}
        running = [gid for gid, f in self.futures.items() if gid not in finished and not f.cancelled()]
        not_started = [g.id for g in self.gates if g.id not in finished and g.id not in running]
        return RunInterrupted(*exc.args, interrupted=running, finished=finished, not_started=not_started)
