"""Third-party gates: installed through the ``zerodrift`` entry-point group, listed and run like built-ins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.backends import make_backend

PLUGIN = '''
"""A third-party gate: every fresh database has at least one materialized view."""
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl


class MatviewCountConfig(GateConfig):
    minimum: int = 1


class MatviewCountGate(Gate):
    """ZG-90: the fresh database has at least ``minimum`` materialized views."""

    id = "ZG-90"
    title = "Matview count"
    config_model = MatviewCountConfig
    inputs = ("db.fresh",)  # ZG-1's fresh database: selecting this gate selects ZG-1; it starts once that exists
    needs = ("server",)

    @classmethod
    def skip_reason(cls, cfg, loaded):
        if cfg.minimum < 0:
            raise ValueError("minimum must not be negative")  # a plugin's bug, for the tests
        return "" if cfg.minimum > 0 else "minimum is 0: nothing to prove"

    @classmethod
    def propose_config(cls, init):
        found = len(init.facts.matviews)
        init.comment(f"the migrations create {found} materialized views; {cls.id} asks the fresh database for them.")
        init.table()
        init.key("minimum", max(found, 1))

    @classmethod
    def doctor(cls, doc):
        doc.add("OK", "matview count", f"minimum {doc.cfg.minimum} is checked on the fresh database")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        # the runner asked skip_reason first: run is only called for a gate that runs
        assert ctx.gate_config.minimum > 0, "run called although skip_reason gave a reason"
        db = ctx.require(result, "db.fresh", "no fresh database")
        if db is None:
            return
        out = ctx.run_sql(result, db, "SELECT count(*) FROM pg_matviews")
        n = out.scalar()
        result.check("enough matviews", n >= ctx.gate_config.minimum, f"{n} matviews, minimum {ctx.gate_config.minimum}")


@hookimpl
def zerodrift_gates():
    return [MatviewCountGate]
'''


def _install(site, module, source):
    """Install ``source`` as the module ``module`` of a distribution in ``site``, registered in the
    ``zerodrift`` entry-point group as an installed package registers it."""
    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[zerodrift]\n{module} = {module}\n")


def _install_plugin(site):
    _install(site, "zd_matview_count", PLUGIN)


def _cli(args, site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "zerodrift.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_third_party_gate_is_listed_configured_and_run(admin_url, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site)
    listing = _cli(["gates"], site)
    assert listing.returncode == 0 and "ZG-90" in listing.stdout and "zd_matview_count" in listing.stdout
    assert "built-in" in listing.stdout  # the built-ins come through the same entry-point group
    backend = make_backend(tmp_path / "repo", commit=False)
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write(textwrap.dedent("""
            [gates.ZG-90]
            minimum = 3
        """))
    import git

    repo = git.Repo(backend.parent)
    repo.git.add("-A")
    repo.index.commit("plugin config")
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90", "--format", "json",
                 "--out", str(tmp_path / "p")], site)
    assert proc.returncode == 0, proc.stderr
    import json

    gates = {g["id"]: g for g in json.loads(proc.stdout)["gates"]}
    assert gates["ZG-90"]["status"] == "PASS" and "3 matviews, minimum 3" in gates["ZG-90"]["checks"][0]["detail"]
    assert "ZG-1" in gates  # its requirement pulled in the built-in producer
    # the plugin's own config model validates its table
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = 3", "minimum = 4"))
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90", "--format", "json",
                 "--out", str(tmp_path / "p2")], site)
    assert proc.returncode == 1
    # the runner asks the plugin's skip_reason before its run: SKIPPED with the plugin's words
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = 4", "minimum = 0"))
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90", "--format", "json",
                 "--out", str(tmp_path / "p3")], site)
    gates = {g["id"]: g for g in json.loads(proc.stdout)["gates"]}
    assert gates["ZG-90"]["status"] == "SKIPPED" and "minimum is 0" in json.dumps(gates["ZG-90"]), gates["ZG-90"]
    # a skip_reason that raises is that gate's ERROR, naming the exception; the run goes on
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = 0", "minimum = -1"))
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90", "--format", "json",
                 "--out", str(tmp_path / "p4")], site)
    gates = {g["id"]: g for g in json.loads(proc.stdout)["gates"]}
    assert gates["ZG-90"]["status"] == "ERROR" and "minimum must not be negative" in json.dumps(gates["ZG-90"])
    assert gates["ZG-1"]["status"] == "PASS"
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = -1", "minimun = 4"))
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90"], site)
    assert proc.returncode == 2 and "gates.ZG-90.minimun: unknown key" in proc.stderr


def test_third_party_gate_takes_part_in_init_and_doctor_through_its_hooks(admin_url, tmp_path):
    """The plugin's own proposal is in `init`'s output, its own check in `doctor`'s, and doctor
    reports it SKIPPED by the plugin's own rule."""
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site)
    backend = make_backend(tmp_path / "repo", commit=False)
    proc = _cli(["init", str(backend), "--stdout"], site)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "# the migrations create 3 materialized views; ZG-90 asks the fresh database for them." in text
    assert "[gates.ZG-90]\nminimum = 3\n" in text
    assert text.index("[gates.ZG-10]") < text.index("[gates.ZG-90]") < text.index("[signing]")  # gate order

    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write("\n[gates.ZG-90]\nminimum = 0\n")
    import git

    repo = git.Repo(backend.parent)
    repo.git.add("-A")
    repo.index.commit("plugin config")
    proc = _cli(["doctor", str(backend), "--admin-url", admin_url], site)
    lines = proc.stdout.splitlines()
    # the plugin's own finding, labelled with its gate id
    assert "OK  ZG-90 matview count: minimum 0 is checked on the fresh database" in lines, proc.stdout
    gates_line = next(line for line in lines if line.startswith("WARN  gates: SKIPPED for lack of input:"))
    assert "ZG-90 (minimum is 0: nothing to prove)" in gates_line
    assert "ZG-2 (" not in gates_line  # the example configures ZG-2
    # a skip_reason that raises is a FAIL naming the plugin, never a crash of doctor
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = 0", "minimum = -1"))
    proc = _cli(["doctor", str(backend), "--admin-url", admin_url], site)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert any(ln.startswith("FAIL  ZG-90: its skip_reason raised ValueError: minimum must not be negative")
               and "report it to the author of zd_matview_count" in ln for ln in proc.stdout.splitlines()), proc.stdout


BROKEN_PROPOSALS = '''
"""Two third-party gates whose proposals for `zerodrift init` are broken."""
from zerodrift.gates.base import Gate, GateConfig
from zerodrift.hookspecs import hookimpl


class RaisingGate(Gate):
    """ZG-77: its proposal raises."""

    id = "ZG-77"
    title = "Raising proposal"

    @classmethod
    def propose_config(cls, init):
        init.table()
        raise RuntimeError("boom")

    def run(self, ctx, result):
        result.check("never", False, "not reached")


class SchemasConfig(GateConfig):
    schemas: list[str] = []


class InvalidGate(Gate):
    """ZG-78: proposes a value its own model rejects."""

    id = "ZG-78"
    title = "Invalid proposal"
    config_model = SchemasConfig

    @classmethod
    def propose_config(cls, init):
        init.table()
        init.key("schemas", "public")

    def run(self, ctx, result):
        result.check("never", False, "not reached")


@hookimpl
def zerodrift_gates():
    return [RaisingGate, InvalidGate]
'''


def test_init_contains_a_plugin_whose_proposal_raises_or_is_invalid(tmp_path):
    """A plugin's propose_config that raises, or proposes a value its own model rejects, costs that
    gate's table only: init writes a comment naming the problem and the plugin, keeps every other
    gate's proposal active and exits as it does without the plugin."""
    import tomllib

    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site)
    _install(site, "zd_broken", BROKEN_PROPOSALS)
    backend = make_backend(tmp_path / "repo", commit=False)
    (backend / "zerodrift.toml").unlink()
    proc = _cli(["init", str(backend), "--stdout"], site)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    text = proc.stdout
    assert ("# ZG-77: its propose_config raised RuntimeError: boom — report it to the author of zd_broken"
            in text), text
    assert "\n[gates.ZG-77]\n" not in text  # what it wrote before raising is dropped
    note = text[text.index("# ZG-78: its propose_config (from zd_broken) proposed an invalid table"):]
    assert "gates.ZG-78.schemas: Input should be a valid list" in " ".join(note.split())
    assert "# [gates.ZG-78]\n# schemas = \"public\"\n" in text  # commented out, for the user to correct
    assert "[gates.ZG-90]\nminimum = 3\n" in text  # the other plugin's proposal, after the broken ones
    config = tomllib.loads(text)
    assert "ZG-78" not in config["gates"] and config["gates"]["ZG-90"] == {"minimum": 3}
    assert text.index("[gates.ZG-10]") < text.index("# ZG-77:") < text.index("[gates.ZG-90]")  # gate order kept
    # writing the file: the exit status is init's usual one, and the problems are listed with the TODOs
    proc = _cli(["init", str(backend)], site)
    assert proc.returncode == 0, proc.stderr
    listed = " ".join(proc.stderr.split())
    assert "TODO ZG-77: its propose_config raised RuntimeError: boom" in listed, proc.stderr
    assert "TODO ZG-78: its propose_config (from zd_broken) proposed an invalid table" in listed
    assert tomllib.loads((backend / "zerodrift.toml").read_text())["gates"]["ZG-90"] == {"minimum": 3}


def test_doctor_fails_a_plugin_whose_input_no_gate_provides_as_run_would(tmp_path):
    """A required input that no installed gate provides stops every run without --gate (exit 2):
    doctor says so with the run's own message instead of "every installed gate has its inputs"."""
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "zd_typo", textwrap.dedent('''
        from zerodrift.gates.base import Gate
        from zerodrift.hookspecs import hookimpl


        class TypoGate(Gate):
            """ZG-91: reads an input nobody provides."""

            id = "ZG-91"
            title = "Typo"
            inputs = ("db.fersh",)

            def run(self, ctx, result):
                result.check("never", False, "not reached")


        @hookimpl
        def zerodrift_gates():
            return [TypoGate]
    '''))
    backend = make_backend(tmp_path / "repo")
    proc = _cli(["doctor", str(backend)], site)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL  gate inputs:")), "")
    assert "gate ZG-91 requires 'db.fersh', which no installed gate provides" in line, proc.stdout
    run = _cli(["run", str(backend)], site)  # positive control: the run itself stops on it
    assert run.returncode == 2 and "'db.fersh'" in run.stderr


def test_doctor_asks_each_gate_whether_it_would_be_skipped(tmp_path):
    """The skip rule is the gate's own: ZG-2 with only from_ref paths runs; a missing runtime
    role costs exactly the gates whose rule needs it."""
    from zerodrift.config import load_config
    from zerodrift.onboard.hooks import gates_needing_runtime_role, skipped_gates
    from zerodrift.plugins import installed_gates

    (tmp_path / "zerodrift.toml").write_text('[[gates.ZG-2.paths]]\nfrom_ref = "v1.0"\n')
    loaded = load_config(tmp_path)
    skipped = skipped_gates(installed_gates(), loaded)
    assert "ZG-2" not in skipped
    assert skipped["ZG-3"].startswith("registry is not configured")
    assert gates_needing_runtime_role(installed_gates(), loaded) == ["ZG-4"]
    (tmp_path / "zerodrift.toml").write_text('[roles]\nruntime = "app_user"\n[gates.ZG-2]\nseed_sql = "SELECT 1"\n')
    loaded = load_config(tmp_path)
    skipped = skipped_gates(installed_gates(), loaded)
    assert skipped["ZG-2"].startswith("no upgrade path") and "ZG-4" not in skipped
    assert gates_needing_runtime_role(installed_gates(), loaded) == []


def test_ledger_header_comes_from_published_facts_not_gate_ids(tmp_path):
    from datetime import datetime, timezone

    import pytest

    from zerodrift.config import load_config
    from zerodrift.gates.base import GateResult
    from zerodrift.provenance import Provenance
    from zerodrift.runner import RunReport

    other = GateResult("ZG-2", "Existing")
    other.facts["schema_fingerprint"] = "f" * 64  # a fact, not offered for the header
    plugin = GateResult("X-1", "A third-party fresh build")
    plugin.publish_header("schema_fingerprint", "a" * 64)
    plugin.publish_header("heads", ["0003"])
    with pytest.raises(ValueError, match="not a ledger header fact"):
        plugin.publish_header("fingerprint", "x")
    report = RunReport(run_id="r", started_at=datetime.now(timezone.utc), loaded=load_config(tmp_path),
                       provenance=Provenance(), results=[other, plugin])
    assert report.schema_fingerprint == "a" * 64 and report.head == ["0003"]
    assert RunReport(run_id="r", started_at=datetime.now(timezone.utc), loaded=load_config(tmp_path),
                     provenance=Provenance(), results=[other]).schema_fingerprint == ""
