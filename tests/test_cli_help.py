"""The command line explains itself: --help shows value types a user can type, and the
configuration reference ships with the package (``zerodrift config-reference``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

ZD = [sys.executable, "-m", "zerodrift.cli"]


def _zd(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*ZD, *args], capture_output=True, text=True, cwd=cwd, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin",
                                                                                     "NO_COLOR": "1"})


@pytest.mark.parametrize("command", [[], ["run"], ["verify"], ["gc"], ["doctor"], ["init"], ["config-reference"]])
def test_help_shows_no_bool_or_list_metavars(command):
    out = _zd(*command, "--help").stdout
    assert "--help" in out
    assert "<bool>" not in out, out
    assert "<list[" not in out, out


def test_repeatable_options_say_so_and_flags_take_no_value():
    out = _zd("run", "--help").stdout
    gate_line = next(line for line in out.splitlines() if "--gate" in line)
    assert "<str> (repeatable)" in gate_line
    keep_line = next(line for line in out.splitlines() if "--keep" in line)
    assert re.search(r"--keep\s+Keep", keep_line), keep_line  # no value column for a flag


def test_config_reference_whole_section_and_gate():
    whole = _zd("config-reference")
    assert whole.returncode == 0
    assert "## `[target]`" in whole.stdout and "### `[gates.ZG-7]`" in whole.stdout
    section = _zd("config-reference", "server")
    assert section.returncode == 0
    assert section.stdout.startswith("## `[server]`") and "`admin_url`" in section.stdout
    assert "[gates." not in section.stdout
    gate = _zd("config-reference", "zg-7")  # any case
    assert gate.returncode == 0 and gate.stdout.startswith("### `[gates.ZG-7]`")
    assert "## `[target]`" not in gate.stdout


def test_config_reference_unknown_name_is_a_usage_error():
    bad = _zd("config-reference", "servr")
    assert bad.returncode == 2
    assert "'servr' is neither a config section" in bad.stderr and "server" in bad.stderr and "ZG-7" in bad.stderr


def test_config_errors_name_the_reference_command(tmp_path):
    (tmp_path / "zerodrift.toml").write_text('[target]\npyton = "x"\n\n[gates.ZG-7]\ntabels = []\n')
    typo = _zd("run", str(tmp_path))
    assert typo.returncode == 2
    assert "target.pyton: unknown key" in typo.stderr
    assert "`zerodrift config-reference target`" in typo.stderr
    (tmp_path / "zerodrift.toml").write_text('[gates.ZG-7]\ntabels = []\n')
    gate = _zd("run", str(tmp_path))
    assert gate.returncode == 2
    assert "gates.ZG-7.tabels: unknown key" in gate.stderr and "`zerodrift config-reference ZG-7`" in gate.stderr
    (tmp_path / "zerodrift.toml").write_text("[target]\npython = 3\n")
    wrong_type = _zd("run", str(tmp_path))
    assert wrong_type.returncode == 2 and "target.python" in wrong_type.stderr
    assert "`zerodrift config-reference target`" in wrong_type.stderr
