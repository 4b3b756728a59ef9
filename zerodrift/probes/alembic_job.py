"""Alembic job probe: run a list of alembic operations in ONE process.

Executed by the *target's* interpreter (it imports only the standard library and
alembic, which the target has). Reads JSON requests on stdin, one per line, and
answers each before reading the next (so one process can serve several jobs)::

    {"alembic_ini": "/abs/alembic.ini", "steps": [{"op": "heads"},
     {"op": "upgrade", "revision": "head"}, {"op": "current"}]}

and writes one JSON line to stdout, prefixed by ``ZERODRIFT-RESULT ``::

    {"steps": [{"op": ..., "ok": true, "duration_s": 0.12, "output": "...",
                "value": ..., "error": ""}], "alembic_version": "1.13.1"}

The ``clock`` op runs no alembic command: it reports the process's own view of its
clock and time zone (``time.time()``, ``datetime.now()``, ``tm_gmtoff``, ``TZ``,
whether libfaketime is mapped, whether time functions were replaced at Python
level), read after whatever ``env.py`` did in the steps before it.

Steps stop at the first failure; later steps are reported as not run. Output of
each step (alembic's own log lines) is captured separately.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import time
import traceback

RESULT_PREFIX = "ZERODRIFT-RESULT "
_REV_LINE = re.compile(r"^([0-9A-Za-z_\-]+)(?: \(.*\))?\s*$")


def _run_step(cfg, step):
    from alembic import command
    from alembic.script import ScriptDirectory

    op = step["op"]
    if op == "heads":
        script = ScriptDirectory.from_config(cfg)
        heads = sorted(script.get_heads())
        for head in heads:
            print(f"{head} (head)")
        return heads
    if op == "upgrade":
        command.upgrade(cfg, step["revision"])
        return None
    if op == "downgrade":
        command.downgrade(cfg, step["revision"])
        return None
    if op == "current":
        buf = io.StringIO()
        outer = cfg.stdout
        cfg.stdout = buf
        try:
            command.current(cfg)
        finally:
            cfg.stdout = outer
        text = buf.getvalue()
        outer.write(text)
        revs = []
        for line in text.splitlines():
            m = _REV_LINE.match(line.strip())
            if m and not line.startswith(("INFO", "WARN", "ERROR")):
                revs.append(m.group(1))
        return sorted(revs)
    if op == "clock":
        return _clock()
    if op == "history":
        return _history(cfg)
    raise ValueError(f"unknown op {op!r}")


def _history(cfg):
    """Every revision from base to head(s) in an order where each comes after its
    ``down_revision``: ``{"revision", "down_revisions", "path", "irreversible"}``, where
    ``irreversible`` is the text of the ``raise`` statement when ``downgrade()`` consists
    of nothing but a ``raise`` (and a docstring): a downgrade declared impossible."""
    import ast

    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    out = []
    for rev in reversed(list(script.walk_revisions("base", "heads"))):
        down = rev.down_revision
        downs = [] if down is None else [down] if isinstance(down, str) else sorted(down)
        declared = ""
        try:
            with open(rev.path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
                    body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
                    if len(body) == 1 and isinstance(body[0], ast.Raise):
                        declared = ast.unparse(body[0])
        except (OSError, SyntaxError):
            pass
        out.append({"revision": rev.revision, "down_revisions": downs, "path": rev.path, "irreversible": declared})
        print(f"{', '.join(downs) or '<base>'} -> {rev.revision}" + (f" (downgrade: {declared})" if declared else ""))
    return out


def _clock():
    import datetime

    patched = []
    if type(time.time).__name__ != "builtin_function_or_method":
        patched.append(f"time.time ({getattr(time.time, '__module__', '?')})")
    if datetime.datetime.__module__ != "datetime":
        patched.append(f"datetime.datetime ({datetime.datetime.__module__})")
    if datetime.date.__module__ != "datetime":
        patched.append(f"datetime.date ({datetime.date.__module__})")
    loaded = False
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            loaded = "libfaketime" in fh.read()
    except OSError:
        pass
    now = time.time()
    local = datetime.datetime.now()
    info = {"time": now, "local": local.isoformat(timespec="seconds"),
            "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "today": datetime.date.today().isoformat(), "gmtoff": time.localtime().tm_gmtoff,
            "tzname": list(time.tzname), "tz_env": os.environ.get("TZ"), "faketime_env": os.environ.get("FAKETIME"),
            "faketime_loaded": loaded, "patched": patched}
    print(json.dumps(info, sort_keys=True))
    return info


def run_job(request) -> dict:
    from alembic import __version__ as alembic_version
    from alembic.config import Config

    os.chdir(request.get("cwd") or os.getcwd())
    cfg = Config(request["alembic_ini"])
    results = []
    failed = False
    for step in request["steps"]:
        if failed:
            results.append({"op": step["op"], "ok": False, "skipped": True, "duration_s": 0.0,
                            "output": "", "value": None, "error": "not run: an earlier step failed"})
            continue
        buf = io.StringIO()
        cfg.stdout = buf
        root = logging.getLogger()
        handler = logging.StreamHandler(buf)
        handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
        start = time.perf_counter()
        value, error = None, ""
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                root.addHandler(handler)
                try:
                    value = _run_step(cfg, step)
                finally:
                    root.removeHandler(handler)
            ok = True
        except SystemExit as exc:  # env.py may sys.exit("message")
            ok, error = False, f"SystemExit: {exc.code}"
        except BaseException as exc:  # report any failure of the target's code
            ok = False
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            buf.write(traceback.format_exc())
        failed = failed or not ok
        results.append({"op": step["op"], "revision": step.get("revision"), "ok": ok, "skipped": False,
                        "duration_s": time.perf_counter() - start, "output": buf.getvalue(),
                        "value": value, "error": error})
    return {"steps": results, "alembic_version": alembic_version}


def main() -> int:
    # one job per line (JSON); a job's answer is one line; the process ends when stdin closes
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = run_job(json.loads(line))
        sys.stdout.write(RESULT_PREFIX + json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
