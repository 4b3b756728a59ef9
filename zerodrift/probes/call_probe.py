"""Call probe: call the target's ``module:callable`` once, report the result, then hold.

Executed by the *target's* interpreter. Request on stdin (first line, JSON)::

    {"path": "app.refresh:refresh_view", "args": ["mv_x"], "kwargs": {}, "hold": true}

The callable may be a plain function or a coroutine function (run with
``asyncio.run``). When SQLAlchemy is importable, every statement the callable sends
through any SQLAlchemy engine is recorded (``before_cursor_execute`` on the Engine
class, which also covers async engines). Answer: one line
``ZERODRIFT-RESULT {"ok", "value", "duration_s", "statements", "error"}``. With
``hold`` the process then stays alive — its pooled connections open — until stdin
closes, so the caller can inspect the sessions it left behind.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import time
import traceback

RESULT_PREFIX = "ZERODRIFT-RESULT "


def main():
    request = json.loads(sys.stdin.readline())
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
    start = time.perf_counter()
    try:
        module_name, _, attr = request["path"].partition(":")
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        value = obj(*request.get("args", []), **request.get("kwargs", {}))
        if inspect.isawaitable(value):
            async def _await(awaitable):
                return await awaitable

            value = asyncio.run(_await(value))
        answer = {"ok": True, "value": value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)}
    except BaseException as exc:  # report any failure of the target's code
        answer = {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                  "traceback": traceback.format_exc(limit=8)}
    answer["duration_s"] = time.perf_counter() - start
    answer["statements_observed"] = observed
    answer["statements"] = [{"at_s": round(s["t"] - start, 4), "sql": s["sql"], "params": s["params"]} for s in statements]
    sys.stdout.write(RESULT_PREFIX + json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    if request.get("hold"):
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
