"""Check ``init``'s candidates in the target's own interpreter: does the path import, and
does it have the right shape?

A Celery app, a matview registry or a refresh callable that ``init`` found by reading
the code is written as active config only when importing it in the target's
interpreter gives an object of the right kind (:func:`shape_problem`). The same
process reports which PostgreSQL drivers that interpreter imports. The child gets
zerodrift's allowlisted environment (:func:`zerodrift.childenv.base_environment`) and
the ``PYTHONPATH`` folders init is about to write, so it sees what a run would see.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from zerodrift.childenv import base_environment
from zerodrift.errors import EnvironmentProblem
from zerodrift.target_process import TargetProcess

#: PostgreSQL drivers SQLAlchemy names after ``postgresql+``
DRIVERS = ("psycopg", "psycopg2", "asyncpg", "pg8000")
_PREFIX = "ZERODRIFT-VERIFY "
_SCRIPT = r"""
import importlib, json, sys
out = {"drivers": [], "objects": {}}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
        out["drivers"].append(name)
    except BaseException:
        pass
for path in json.loads(sys.argv[1]):
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        shape = {"ok": True, "type": type(obj).__name__, "mro": [c.__name__ for c in type(obj).__mro__],
                 "callable": callable(obj) and not isinstance(obj, type)}
        if isinstance(obj, (list, tuple)):
            shape["strings"] = bool(obj) and all(isinstance(v, str) for v in obj)
        out["objects"][path] = shape
    except BaseException as exc:
        out["objects"][path] = {"ok": False, "error": (type(exc).__name__ + ": " + str(exc)).strip()[:300]}
sys.stdout.write("\n" + %r + json.dumps(out) + "\n")
""" % _PREFIX


@dataclass
class Checked:
    """What the target's interpreter said: ``objects`` maps ``module:attribute`` to its
    shape (``ok``, ``type``, ``mro``, ``callable``, ``strings``) or ``error``;
    ``drivers`` are the importable drivers; ``problem`` says why nothing was checked."""

    python: str
    objects: dict[str, dict] = field(default_factory=dict)
    drivers: list[str] = field(default_factory=list)
    problem: str = ""


def check_in_target(python: str, paths: list[str], pythonpath: list[Path], cwd: Path,
                    timeout: float = 60.0) -> Checked:
    """Import each ``module:attribute`` of ``paths`` in ``python`` (one process, ``cwd`` as its
    working folder, ``pythonpath`` prepended); never raises — a failure is in ``problem``."""
    env = base_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in pythonpath] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
        done = TargetProcess.run([python, "-c", _SCRIPT, json.dumps(paths), *DRIVERS], cwd=cwd, env=env, timeout=timeout)
    except EnvironmentProblem as exc:
        return Checked(python, problem=f"{python} could not check the candidates: {exc}")
    line = done.marked(_PREFIX)
    if line is None:
        said = f"no answer within {timeout:.0f} s" if done.timed_out else f"exited {done.exit_status} before answering: {done.tail()}"
        return Checked(python, problem=f"{python} {said}")
    data = json.loads(line)
    return Checked(python, objects=data["objects"], drivers=data["drivers"])


def shape_problem(kind: str, shape: dict | None) -> str:
    """Why ``shape`` is not a ``kind`` (``celery``, ``registry``, ``callable``); '' when it is."""
    if shape is None:
        return "not checked"
    if not shape.get("ok"):
        return f"importing it failed: {shape.get('error')}"
    if kind == "celery" and "Celery" not in shape.get("mro", []):
        return f"it is a {shape.get('type')}, not a Celery app"
    if kind == "registry" and not shape.get("strings"):
        return f"it is a {shape.get('type')}, not a non-empty list or tuple of view names"
    if kind == "callable" and not shape.get("callable"):
        return f"it is a {shape.get('type')}, not a function"
    return ""
