"""Call probe: call the target's ``module:callable`` on request, report each result, stay alive.

Executed by the *target's* interpreter. Request on stdin (first line, JSON)::

    {"path": "app.refresh:refresh_view", "args": ["mv_x"], "kwargs": {}}

With ``"resolve_only": true`` the probe only imports the module and looks the callable
up (what a worker does when it starts), without calling it. With ``"read": {"path":
"status.name"}`` or ``"read": {"regex": "status=(\\w+)"}`` the outcome is read from the
returned object (see :func:`read_outcome`): ``value`` is what was read, ``raw`` the
``repr()`` of the returned object, and ``read_error`` says why the path or the regular
expression did not apply.

The callable may be a plain function or a coroutine function (run with
one event loop kept for the process's life). When SQLAlchemy is importable, every statement the callable sends
through any SQLAlchemy engine is recorded (``before_cursor_execute`` on the Engine
class, which also covers async engines). Answer: one line
``ZERODRIFT-RESULT {"ok", "value", "duration_s", "statements", "error", "missing", "pid",
"hash_probe"}`` per request line: ``missing`` is true when the configured callable does not
exist (its module is not found, or an attribute is absent) — a configuration fault, unlike
an exception raised by the target's code; ``pid`` is the process id and ``hash_probe`` the
value of ``hash("zerodrift")``, which differs between processes started with different
``PYTHONHASHSEED`` (Python docs, "PYTHONHASHSEED"). The process stays alive — its pooled connections open — until stdin closes, so
the caller can inspect the sessions a call left behind, then ask for the next call.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import time
import traceback

RESULT_PREFIX = "ZERODRIFT-RESULT "


_LOOP = []


def _loop():
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
        asyncio.set_event_loop(_LOOP[0])
    return _LOOP[0]


class ReadError(Exception):
    """The configured path or regular expression does not apply to the returned value."""


def _scalar(value):
    """A JSON scalar for a value read from the result: an enum member reads as its name."""
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def read_outcome(value, read):
    """What ``read`` says the outcome of ``value`` is.

    ``read["path"]``: dot-separated steps, each an attribute (objects, dataclasses,
    named tuples), else a key (mappings; a step of digits also indexes sequences).
    ``read["regex"]``: a regular expression searched in ``str(value)``; the first group
    if it has one, else the whole match. The result is a JSON scalar; an enum member
    reads as its name (add ``.value`` for its value). Raises ReadError naming the step
    that did not apply and what the object offers instead."""
    import re

    if read.get("regex"):
        text = str(value)
        match = re.search(read["regex"], text)
        if match is None:
            raise ReadError(f"result_regex {read['regex']!r} does not match str() of the result: {text[:200]!r}")
        return match.group(1) if match.re.groups else match.group(0)
    obj = value
    done = []
    for step in read["path"].split("."):
        if isinstance(obj, dict) or (hasattr(obj, "keys") and hasattr(obj, "__getitem__")):
            if step in obj:
                obj = obj[step]
                done.append(step)
                continue
        elif hasattr(obj, step):
            obj = getattr(obj, step)
            done.append(step)
            continue
        elif step.isdigit() and isinstance(obj, (list, tuple)) and int(step) < len(obj):
            obj = obj[int(step)]
            done.append(step)
            continue
        where = f"the result{'.' + '.'.join(done) if done else ''} ({type(obj).__name__}: {repr(obj)[:120]})"
        offers = _offers(obj)
        raise ReadError(f"result_path {read['path']!r}: {where} has no attribute or key {step!r}"
                        + (f" (it has: {', '.join(offers)})" if offers else ""))
    return _scalar(obj)


def _offers(obj):
    """The keys or public attributes ``obj`` has, to name in an error."""
    if hasattr(obj, "keys"):
        return sorted(map(str, obj.keys()))
    fields = list(getattr(obj, "__dataclass_fields__", {})) or list(getattr(obj, "_fields", ()))
    if fields:
        return fields
    return sorted(n for n in getattr(obj, "__dict__", {}) if not n.startswith("_"))


class Missing(Exception):
    """The configured ``module:callable`` does not exist."""


def resolve(path):
    """The object ``path`` (``module:attr.attr``) names; Missing when the module or an
    attribute does not exist (an exception raised while the module runs propagates)."""
    module_name, colon, attr = path.partition(":")
    if not colon or not module_name or not attr:
        raise Missing(f"{path!r} is not module:callable")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise Missing(f"no module named {exc.name!r}") from exc
        raise  # a module the target's code imports is missing: the target's fault
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise Missing(f"{type(obj).__name__} {getattr(obj, '__name__', '')!r} has no attribute {part!r}") from exc
    return obj


def call(request, statements, observed):
    statements.clear()
    start = time.perf_counter()
    try:
        obj = resolve(request["path"])
        if request.get("resolve_only"):
            value = None
        else:
            value = obj(*request.get("args", []), **request.get("kwargs", {}))
            if inspect.isawaitable(value):
                async def _await(awaitable):
                    return await awaitable

                # one loop for all calls: an async engine's pooled connections belong to it
                value = _loop().run_until_complete(_await(value))
        answer = {"ok": True, "value": value if isinstance(value, (str, int, float, bool, type(None))) else repr(value),
                  "raw": repr(value)}
        if request.get("read") and not request.get("resolve_only"):
            try:
                answer["value"] = read_outcome(value, request["read"])
            except ReadError as exc:
                answer["read_error"] = str(exc)
    except Missing as exc:
        answer = {"ok": False, "missing": True, "error": str(exc)}
    except BaseException as exc:  # report any failure of the target's code
        answer = {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                  "traceback": traceback.format_exc(limit=8)}
    answer["pid"] = os.getpid()
    answer["hash_probe"] = hash("zerodrift")
    answer["duration_s"] = time.perf_counter() - start
    answer["statements_observed"] = observed
    answer["statements"] = [{"at_s": round(s["t"] - start, 4), "sql": s["sql"], "params": s["params"]} for s in statements]
    return answer


def main():
    statements = []
    observed = False
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "before_cursor_execute")
        def _record(conn, cursor, statement, parameters, context, executemany):
            statements.append({"t": time.perf_counter(), "sql": " ".join(str(statement).split()),
                               "params": repr(parameters)[:200]})

        observed = True
    except ImportError:
        pass
    # one request per line; the process (and the sessions the calls left open) lives until stdin closes
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = call(json.loads(line), statements, observed)
        sys.stdout.write(RESULT_PREFIX + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
