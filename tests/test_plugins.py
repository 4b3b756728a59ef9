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

    def run(self, ctx: GateContext, result: GateResult) -> None:
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


def _install_plugin(site):
    (site / "zd_matview_count.py").write_text(PLUGIN)
    dist = site / "zd_matview_count-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zd-matview-count\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zerodrift]\nmatview_count = zd_matview_count\n")


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
    (backend / "zerodrift.toml").write_text((backend / "zerodrift.toml").read_text().replace("minimum = 4", "minimun = 4"))
    proc = _cli(["run", str(backend), "--admin-url", admin_url, "-g", "ZG-90"], site)
    assert proc.returncode == 2 and "gates.ZG-90.minimun: unknown key" in proc.stderr
