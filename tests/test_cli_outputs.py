"""CLI output conventions: stdout carries only machine output, GitHub Actions annotations and summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.backends import latest_pack, make_backend


def _run(args, env):
    return subprocess.run([sys.executable, "-m", "zerodrift.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_json_on_stdout_progress_on_stderr_no_colour(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    proc = _run(["run", str(backend), "--admin-url", admin_url, "--out", str(tmp_path / "p"), "-g", "ZG-0",
                 "--format", "json"], {"NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout is exactly the JSON document, the one in the pack
    assert proc.stdout == (latest_pack(tmp_path / "p") / "ledger.json").read_text()
    assert data["gates"][0]["id"] == "ZG-0" and data["exit_code"] == 0
    assert "\x1b[" not in proc.stderr and "ZG-0" in proc.stderr
    proc = _run(["run", str(backend), "--admin-url", admin_url, "--out", str(tmp_path / "p2"), "-g", "ZG-0",
                 "--format", "junit"], {})
    assert proc.stdout.startswith("<?xml") and "<testsuite" in proc.stdout


def test_github_actions_annotations_summary_and_pr_head(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    (backend / "untracked.txt").write_text("makes ZG-0 fail\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": "f" * 40}}}))
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_EVENT_PATH": str(event),
           "GITHUB_SHA": "e" * 40, "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "o/r",
           "GITHUB_RUN_ID": "7"}
    proc = _run(["run", str(backend), "--admin-url", admin_url, "--out", str(tmp_path / "p"), "-g", "ZG-0"], env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and "title=ZG-0 FAIL%3A Provenance and scope::" in errors[0]
    assert "untracked.txt" in errors[0]
    text = summary.read_text()
    assert "| ZG-0 Provenance and scope | FAIL |" in text
    ledger = (latest_pack(tmp_path / "p") / "ledger.md").read_text()
    assert "pull request head `" + "f" * 40 + "`" in ledger and "checked-out `" + "e" * 40 + "`" in ledger
    assert json.loads((latest_pack(tmp_path / "p") / "ledger.json").read_text())["ci"]["pull_request_head_sha"] == "f" * 40
