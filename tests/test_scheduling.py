"""The scheduling rule (zerodrift.scheduling): selection from declared inputs, and a gate
starts when the inputs it needs to start exist or are known unavailable.

The gates here are small fakes installed as a real plugin (a module and its dist-info
with a ``zerodrift`` entry point on ``sys.path``) and run through ``zerodrift.runner.run``;
they need no server, so none is started.
"""

from __future__ import annotations

import importlib
import sys
import time

import pytest

from tests.backends import make_backend
from zerodrift.errors import UsageError
from zerodrift.gates.base import Gate, Input
from zerodrift.plugins import installed_gates
from zerodrift.runner import RunOptions, run
from zerodrift.scheduling import select_gates

MODULE = "zd_fake_scheduling_gates"

PLUGIN = '''
"""Fake gates for the scheduling tests: they exchange artifacts and record when they ran."""
import threading
import time

from zerodrift.context import GateContext
from zerodrift.errors import ArtifactUnavailable
from zerodrift.gates.base import Gate, GateResult, Input
from zerodrift.hookspecs import hookimpl

#: gate id or event -> time.monotonic() when it happened
TIMES = {}
late_reader_started = threading.Event()
#: seconds ZG-191 waits for ZG-192 to read its value (0: when ZG-192 is not in the run)
PRODUCER_WAIT_S = 20


class Producer(Gate):
    """ZG-191: publishes zd.value after 0.3 s, then keeps running until ZG-192 has read it."""

    id = "ZG-191"
    title = "producer"
    provides = ("zd.value",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        time.sleep(0.3)
        TIMES["zd.value published"] = time.monotonic()
        ctx.artifacts.publish("zd.value", 42)
        deadline = time.monotonic() + PRODUCER_WAIT_S
        while "ZG-192 read" not in TIMES and time.monotonic() < deadline:
            time.sleep(0.02)
        result.check("consumer read the value while the producer ran", "ZG-192 read" in TIMES or not PRODUCER_WAIT_S, "")


class Consumer(Gate):
    """ZG-192: needs zd.value to start."""

    id = "ZG-192"
    title = "consumer"
    inputs = ("zd.value",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        TIMES["ZG-192 started"] = time.monotonic()
        value = ctx.require(result, "zd.value", "no value to read")
        if value is None:
            return
        TIMES["ZG-192 read"] = time.monotonic()
        result.check("value read", value == 42, f"read {value}")


class Quitter(Gate):
    """ZG-193: declares zd.missing but ends SKIPPED without publishing it."""

    id = "ZG-193"
    title = "quitter"
    provides = ("zd.missing",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        time.sleep(0.2)
        result.skip("nothing to produce")


class NeedsMissing(Gate):
    """ZG-194: needs zd.missing to start; reads it with ctx.require (ERROR when unavailable)."""

    id = "ZG-194"
    title = "needs missing"
    inputs = ("zd.missing",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        TIMES["ZG-194 started"] = time.monotonic()
        ctx.require(result, "zd.missing", "nothing to check")


class OptionalLater(Gate):
    """ZG-195: reads zd.missing if there is one, later; says so with a SKIPPED check otherwise."""

    id = "ZG-195"
    title = "optional later"
    inputs = (Input("zd.missing", optional=True, at_start=False),)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        TIMES["ZG-195 started"] = time.monotonic()
        result.check("own check", True, "")
        try:
            ctx.artifacts.require("zd.missing")
        except ArtifactUnavailable as exc:
            result.skip_check("missing input", str(exc))


class LateReader(Gate):
    """ZG-196: reads zd.late only at its end, so it starts alongside its producer."""

    id = "ZG-196"
    title = "late reader"
    inputs = (Input("zd.late", at_start=False),)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        late_reader_started.set()
        value = ctx.require(result, "zd.late", "no late value")
        if value is not None:
            result.check("late value read", value == "late", value)


class LateProducer(Gate):
    """ZG-197: publishes zd.late only once ZG-196 is running."""

    id = "ZG-197"
    title = "late producer"
    provides = ("zd.late",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        if result.check("the late reader started before the value existed", late_reader_started.wait(20), ""):
            ctx.artifacts.publish("zd.late", "late")


def never_runs(gate_id: str, doc: str, inputs: tuple, provides: tuple = ()) -> type:
    """A gate whose selection must be refused before anything starts."""

    def run(self, ctx: GateContext, result: GateResult) -> None:
        result.check("never runs", False, "")

    return type(f"Gate{gate_id[3:]}", (Gate,), {"__doc__": f"{gate_id}: {doc}", "id": gate_id, "title": doc,
                                                 "inputs": inputs, "provides": provides, "run": run})


#: ZG-198 and ZG-199 each read what the other provides; ZG-189 requires what no gate provides
CycleA = never_runs("ZG-198", "cycle a", ("zd.c2",), ("zd.c1",))
CycleB = never_runs("ZG-199", "cycle b", ("zd.c1",), ("zd.c2",))
NoProvider = never_runs("ZG-189", "no provider", ("zd.nobody",))


class OptionalNoProvider(Gate):
    """ZG-188: an optional input no gate provides is known unavailable at once."""

    id = "ZG-188"
    title = "optional without provider"
    inputs = (Input("zd.nobody", optional=True),)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        try:
            ctx.artifacts.require("zd.nobody", timeout=5)
        except ArtifactUnavailable as exc:
            result.check("started without it", True, str(exc))


class Legacy(Gate):
    """ZG-187: declares its inputs with the attributes gates used before ``inputs``."""

    id = "ZG-187"
    title = "legacy attributes"
    requires = ("zd.value", "zd.missing")
    starts_after = ("zd.value",)
    optional_requires = ("zd.late",)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        result.check("value", ctx.require(result, "zd.value") == 42, "")


@hookimpl
def zerodrift_gates():
    return [Producer, Consumer, Quitter, NeedsMissing, OptionalLater, LateReader, LateProducer, CycleA, CycleB,
            NoProvider, OptionalNoProvider, Legacy]
'''


@pytest.fixture
def fake_gates(tmp_path):
    """The fake gates installed as a plugin for this test (removed afterwards); yields their module."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{MODULE}.py").write_text(PLUGIN)
    dist = site / "zd_fake_scheduling_gates-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zd-fake-scheduling-gates\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[zerodrift]\nfake_scheduling = {MODULE}\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    installed_gates.cache_clear()
    try:
        yield importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(MODULE, None)
        installed_gates.cache_clear()


@pytest.fixture
def backend(tmp_path):
    return make_backend(tmp_path / "repo")


def _run(backend, *gates):
    report = run(RunOptions(target=backend, gates=list(gates)))
    return report, {r.gate_id: r for r in report.results}


def test_selection_adds_providers_of_required_inputs_only(fake_gates):
    available = installed_gates()
    assert "ZG-1" in available  # the built-ins are there too
    gates, added = select_gates(available, ["zg-192"])
    assert [g.id for g in gates] == ["ZG-191", "ZG-192"] and added == ["ZG-191"]
    gates, added = select_gates(available, ["ZG-195"])  # optional input: its provider is not added
    assert [g.id for g in gates] == ["ZG-195"] and added == []
    gates, added = select_gates(available, ["ZG-195", "ZG-193"])  # ...but orders it when selected
    assert [g.id for g in gates] == ["ZG-193", "ZG-195"]


def test_a_missing_provider_or_a_cycle_is_a_usage_error_before_anything_starts(fake_gates, backend):
    with pytest.raises(UsageError, match=r"gate ZG-189 requires 'zd.nobody', which no installed gate provides"):
        run(RunOptions(target=backend, gates=["ZG-189"]))
    with pytest.raises(UsageError, match=r"gate dependency cycle through ZG-19[89] \(ZG-19[89] → ZG-19[89] → ZG-19[89]\)"):
        run(RunOptions(target=backend, gates=["ZG-198"]))
    with pytest.raises(UsageError, match="unknown gate id ZG-186"):
        run(RunOptions(target=backend, gates=["ZG-186"]))


def test_a_gate_starts_once_its_input_exists_while_the_producer_still_runs(fake_gates, backend):
    report, results = _run(backend, "ZG-192")
    times = fake_gates.TIMES
    assert results["ZG-191"].status.value == "PASS", results["ZG-191"].summary
    assert results["ZG-192"].status.value == "PASS", results["ZG-192"].summary
    assert times["ZG-192 started"] >= times["zd.value published"]  # not before its input existed
    assert report.included_as_dependency == ["ZG-191"]
    assert [r.gate_id for r in report.results] == ["ZG-191", "ZG-192"]  # providers first
    assert not report.server.kind  # no gate needs a server: none was started


def test_a_gate_whose_producer_ended_without_its_input_starts_and_says_why(fake_gates, backend):
    report, results = _run(backend, "ZG-194", "ZG-195", "ZG-193")
    times = fake_gates.TIMES
    needs = results["ZG-194"]
    assert needs.status.value == "ERROR"
    assert needs.error == "nothing to check: ZG-193 ended SKIPPED without producing 'zd.missing'"
    optional = results["ZG-195"]
    assert optional.status.value == "PASS"
    assert [(c.name, c.status.value, c.detail) for c in optional.checks][1] == (
        "missing input", "SKIPPED", "ZG-193 ended SKIPPED without producing 'zd.missing'")
    assert times["ZG-195 started"] < times["ZG-194 started"]  # read later: it did not wait to start
    assert report.exit_code == 1  # an ERROR


def test_an_input_read_later_lets_the_gate_start_alongside_its_producer(fake_gates, backend):
    _, results = _run(backend, "ZG-196")
    assert results["ZG-197"].status.value == "PASS", results["ZG-197"].summary
    assert results["ZG-196"].status.value == "PASS", results["ZG-196"].summary


def test_an_optional_input_no_selected_gate_provides_is_unavailable_at_once(fake_gates, backend):
    started = time.monotonic()
    _, results = _run(backend, "ZG-188")
    gate = results["ZG-188"]
    assert gate.status.value == "PASS" and gate.checks[0].detail == "no selected gate provides 'zd.nobody'"
    assert list(results) == ["ZG-188"] and time.monotonic() - started < 30


def test_the_attributes_gates_used_before_inputs_still_declare_them(fake_gates, backend):
    legacy = installed_gates()["ZG-187"]
    assert legacy.declared_inputs() == (Input("zd.value"), Input("zd.missing", at_start=False),
                                        Input("zd.late", optional=True, at_start=False))
    fake_gates.PRODUCER_WAIT_S = 0
    _, results = _run(backend, "ZG-187")
    assert list(results) == ["ZG-191", "ZG-193", "ZG-187"]  # required inputs pulled their providers in
    assert results["ZG-187"].status.value == "PASS", results["ZG-187"].summary


def test_built_in_gates_declare_their_inputs():
    """The built-ins' schedule: what each reads, whether it needs it to start."""
    declared = {gid: [(i.name, i.optional, i.at_start) for i in g.declared_inputs()]
                for gid, g in installed_gates().items() if g.__module__.startswith("zerodrift.gates.")}
    later_existing = ("dbs.existing", True, False)
    assert declared["ZG-2"] == [("snapshot.fresh", False, False)]  # builds its database alongside ZG-1
    assert declared["ZG-4"] == [("db.fresh", False, True), ("matview.registry", False, True), later_existing]
    for gid in ("ZG-3", "ZG-7", "ZG-10"):
        assert declared[gid] == [("db.fresh", False, True), later_existing]
    for gid in ("ZG-6", "ZG-8"):
        assert declared[gid] == [("db.fresh", False, True)]
    for gid in ("ZG-0", "ZG-1", "ZG-5", "ZG-9", "ZG-11"):
        assert declared[gid] == []
    gates, added = select_gates(installed_gates(), ["ZG-4"])
    assert [g.id for g in gates] == ["ZG-1", "ZG-3", "ZG-4"] and added == ["ZG-1", "ZG-3"]


def test_an_input_that_is_neither_a_name_nor_an_input_is_refused():
    class Bad(Gate):
        id = "ZG-186"
        title = "bad"
        inputs = (("db.fresh",),)

    with pytest.raises(TypeError, match="gate ZG-186: inputs holds"):
        Bad.declared_inputs()


def test_the_run_uses_the_config_it_is_given_and_the_pack_renders_the_model_it_is_given(fake_gates, backend, tmp_path):
    """One config per run (the CLI loads it and hands it over) and one ledger model per pack."""
    import json

    from zerodrift.ledger.model import ledger_data
    from zerodrift.ledger.render import write_proof_pack
    from zerodrift.runner import load_run_config

    options = RunOptions(target=backend, gates=["ZG-188"], output=tmp_path / "packs")
    loaded = load_run_config(options)
    report = run(options, loaded=loaded)
    assert report.loaded is loaded
    data = ledger_data(report)
    data["ci"] = {"marker": "rendered from the model handed over"}
    written = write_proof_pack(report, data=data)
    assert json.loads(written["json"].read_text())["ci"] == data["ci"]
    assert "ZG-188" in written["markdown"].read_text() and "ZG-188" in written["junit"].read_text()


def test_a_gate_its_own_config_skips_pulls_in_no_provider(admin_url, tmp_path):
    """ZG-4 SKIPs without roles.runtime (its skip_reason): selecting it then makes no fresh
    database (ZG-1) and reads no registry (ZG-3) for it. With the role, it pulls both in."""
    from tests.backends import commit_all, edit

    backend = make_backend(tmp_path / "repo", commit=False)
    available = installed_gates()
    assert {"ZG-1", "ZG-3"} <= {g.id for g in select_gates(available, ["ZG-4"])[0]}  # positive control
    edit(backend / "zerodrift.toml", 'runtime = "app_user"', 'runtime = ""')
    commit_all(backend.parent, "no runtime role")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-4"]))
    assert [(r.gate_id, r.status.value) for r in report.results] == [("ZG-4", "SKIPPED")]
    assert report.included_as_dependency == []
