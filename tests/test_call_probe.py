"""The call probe tells a callable that does not exist from target code that raises."""

from __future__ import annotations

import json
import subprocess
import sys

from zerodrift.probes import call_probe
from zerodrift.target_process import PROBES_DIR, RESULT_PREFIX


def test_missing_callable_is_told_apart_from_code_that_raises(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "good.py").write_text("def refresh(name):\n    raise RuntimeError('broken ' + name)\n")
    (tmp_path / "pkg" / "needs_dep.py").write_text("import not_installed_dependency\n")
    (tmp_path / "pkg" / "raises.py").write_text("raise ValueError('bad settings')\n")
    requests = [
        ({"path": "pkg.nomodule:refresh", "resolve_only": True}, True, "no module named 'pkg.nomodule'"),
        ({"path": "nopkg.mod:refresh", "resolve_only": True}, True, "no module named 'nopkg'"),
        ({"path": "pkg.good:refreshh", "resolve_only": True}, True, "has no attribute 'refreshh'"),
        ({"path": "pkg.good", "resolve_only": True}, True, "is not module:callable"),
        ({"path": "pkg.needs_dep:refresh", "resolve_only": True}, False, "not_installed_dependency"),
        ({"path": "pkg.raises:refresh", "resolve_only": True}, False, "ValueError: bad settings"),
        ({"path": "pkg.good:refresh", "resolve_only": True}, None, ""),
        ({"path": "pkg.good:refresh", "args": ["mv"]}, False, "RuntimeError: broken mv"),
    ]
    stdin = "".join(json.dumps(r) + "\n" for r, _, _ in requests)
    out = subprocess.run([sys.executable, str(PROBES_DIR / "call_probe.py")], input=stdin, capture_output=True,
                         text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PYTHONHASHSEED": "7"},
                         timeout=60)
    answers = [json.loads(line[len(RESULT_PREFIX):]) for line in out.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert len(answers) == len(requests), out.stdout + out.stderr
    for (request, missing, text), answer in zip(requests, answers):
        if missing is None:
            assert answer["ok"], answer
        else:
            assert not answer["ok"] and bool(answer.get("missing")) is missing and text in answer["error"], (request, answer)
        assert answer["pid"] == answers[0]["pid"]
    # the probe reports its own hash(), which follows the PYTHONHASHSEED it was started with
    seeded = subprocess.run([sys.executable, "-c", "print(hash('zerodrift'))"], capture_output=True, text=True,
                            env={"PYTHONHASHSEED": "7"}, timeout=60).stdout.strip()
    assert answers[0]["hash_probe"] == int(seeded)
    assert call_probe.RESULT_PREFIX == RESULT_PREFIX
