"""Probe: import ``module:attribute`` from the target and report it as JSON.

Executed by the *target's* interpreter (standard library only). Requests on stdin, one JSON object per line::

    {"path": "app.matview_registry:MATERIALIZED_VIEWS", "call": true}

If the attribute is callable and ``call`` is true it is called without arguments
(a coroutine result is awaited). The answer, prefixed ``ZERODRIFT-RESULT ``, is
``{"ok": true, "value": <JSON>, "type": "list"}`` or ``{"ok": false, "error": "...",
"stage": "...", "kind": "..."}``: ``stage`` says what was being done (``import module
app.x``, ``get attribute X``, ``call app.x:X``) and ``kind`` whose failure it is —
``config`` (the configured path names no module or attribute), ``environment`` (a
module from outside the target's package is not installed in its interpreter) or
``target`` (the target's own code raised).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
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


class LoadError(Exception):
    """Loading ``module:attribute`` failed at ``stage``; ``kind`` is config, environment or target."""

    def __init__(self, stage: str, kind: str, exc: BaseException) -> None:
        super().__init__(stage)
        self.stage, self.kind, self.exc = stage, kind, exc

    def answer(self) -> dict:
        exc = self.exc
        return {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                "stage": self.stage, "kind": self.kind, "frames": target_frames(exc),
                # the innermost frames: where the target's code raised, not importlib's outer ones
                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-20))}


def target_frames(exc: BaseException) -> list[str]:
    """The traceback frames of ``exc`` that lie in the target's own files, outermost
    first, as ``path:line in function: source line``. A file is the target's when it is
    not under the interpreter's prefixes (standard library, site-packages of its
    environment), not a frozen import frame and not one of zerodrift's probes; paths
    are shown relative to the working folder where they lie below it."""
    own = os.path.dirname(os.path.abspath(__file__))
    prefixes = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    cwd = os.getcwd()
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        if frame.filename.startswith("<") or path.startswith(own + os.sep) \
                or any(path.startswith(p + os.sep) for p in prefixes):
            continue
        shown = os.path.relpath(path, cwd) if path.startswith(cwd + os.sep) else path
        frames.append(f"{shown}:{frame.lineno} in {frame.name}" + (f": {frame.line.strip()}" if frame.line else ""))
    return frames


def load_object(path: str, default_attr: str = ""):
    """The object ``module:attribute`` names (``default_attr`` when no attribute is given).

    Raises LoadError saying at which stage it failed and whose failure it is: a module
    or attribute the path names that does not exist is ``config``; a missing module
    outside the target's top-level package is ``environment``; anything raised while
    the target's module runs is ``target``.
    """
    module_name, _, attr = path.partition(":")
    attr = attr or default_attr
    if not module_name or not attr:
        raise LoadError(f"read {path!r}", "config", ValueError(f"{path!r} is not of the form module:attribute"))
    stage = f"import module {module_name}"
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise LoadError(stage, "config", exc) from exc
        same_package = missing.split(".")[0] == module_name.split(".")[0]
        raise LoadError(stage, "target" if same_package else "environment", exc) from exc
    except BaseException as exc:  # the target's module raised while it ran
        raise LoadError(stage, "target", exc) from exc
    for part in attr.split("."):
        stage = f"get attribute {part} of {module_name}"
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise LoadError(stage, "config", exc) from exc
        except BaseException as exc:  # a module __getattr__ or a property of the target raised
            raise LoadError(stage, "target", exc) from exc
    return obj


def answer_for(request: dict) -> dict:
    path = request["path"]
    try:
        obj = load_object(path)
        if callable(obj) and request.get("call", True) and not isinstance(obj, type):
            try:
                obj = obj()
                if inspect.isawaitable(obj):
                    obj = asyncio.run(obj)
            except BaseException as exc:
                raise LoadError(f"call {path}", "target", exc) from exc
        answer = {"ok": True, "value": _jsonable(obj), "type": type(obj).__name__}
    except LoadError as exc:
        answer = exc.answer()
    return answer


if __name__ == "__main__":
    sys.exit(main())
