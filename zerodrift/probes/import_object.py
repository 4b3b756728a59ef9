"""Probe: import ``module:attribute`` from the target and report it as JSON.

Executed by the *target's* interpreter (standard library only). Requests on stdin, one JSON object per line::

    {"path": "app.matview_registry:MATERIALIZED_VIEWS", "call": true}

If the attribute is callable and ``call`` is true it is called without arguments
(a coroutine result is awaited). The answer, prefixed ``ZERODRIFT-RESULT ``, is
``{"ok": true, "value": <JSON>, "type": "list"}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import traceback

RESULT_PREFIX = "ZERODRIFT-RESULT "


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return str(value)


def main() -> int:
    for line in sys.stdin:  # one request per line, answered in turn
        if line.strip():
            sys.stdout.write(RESULT_PREFIX + json.dumps(answer_for(json.loads(line))) + "\n")
            sys.stdout.flush()
    return 0


def answer_for(request: dict) -> dict:
    path = request["path"]
    try:
        module_name, _, attr = path.partition(":")
        if not module_name or not attr:
            raise ValueError(f"{path!r} is not of the form module:attribute")
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if callable(obj) and request.get("call", True) and not isinstance(obj, type):
            obj = obj()
            if inspect.isawaitable(obj):
                obj = asyncio.run(obj)
        answer = {"ok": True, "value": _jsonable(obj), "type": type(obj).__name__}
    except BaseException as exc:  # report any failure of the target's code
        answer = {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                  "traceback": traceback.format_exc(limit=8)}
    return answer


if __name__ == "__main__":
    sys.exit(main())
