"""Beat probe: a real ``celery beat``, its start-up done before its arguments are known.

Executed by the *target's* interpreter (standard library and Celery, which the target
has). ZG-5 starts it as soon as the gate starts, while the schedule store is still being
seeded and the queues declared: the slow part of starting beat — the interpreter,
Celery's command line and the app's module — is then done by the time beat may run.

First request (stdin, one JSON line)::

    {"argv": ["-A", "module:attribute", "-b", "...", "beat", "-s", "...", ...]}

sets ``sys.argv`` to what ``python -m celery <argv>`` has, then imports Celery's command
line (:mod:`celery.__main__`) and the app's module (``-A``'s value up to ``:``) as that
command would first, and answers ``ZERODRIFT-RESULT {"preloaded": true}`` (``false`` with
``error`` when that import raised: the command line then imports it again and beat
reports the failure in its own log, as at a normal start). Second request::

    {"run": true}

runs Celery's own command line in this process, exactly what ``python -m celery <argv>``
runs, until beat stops (SIGTERM); it is never answered. Its output is beat's log. A
closed stdin instead of a second request ends the probe.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys

RESULT_PREFIX = "ZERODRIFT-RESULT "


def main() -> int:
    first = sys.stdin.readline()
    if not first.strip():
        return 0
    argv = json.loads(first)["argv"]
    # as with ``python -m celery``: sys.argv[0] is celery/__main__.py, and the working folder
    # (not this script's folder) is sys.path[0]
    spec = importlib.util.find_spec("celery.__main__")
    sys.argv = [spec.origin if spec and spec.origin else "celery", *argv]
    sys.path[0] = os.getcwd()
    app = argv[argv.index("-A") + 1] if "-A" in argv else ""
    answer: dict = {"preloaded": True}
    try:
        import celery.__main__  # noqa: F401  (the command line and what it imports)

        if app:
            importlib.import_module(app.partition(":")[0])
    except BaseException as exc:  # reported again by beat itself when the command line imports it
        answer = {"preloaded": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(RESULT_PREFIX + json.dumps(answer) + "\n")
    sys.stdout.flush()
    if not sys.stdin.readline().strip():
        return 0
    from celery.__main__ import main as celery_main

    celery_main()  # exits through SystemExit with beat's own status
    return 0


if __name__ == "__main__":
    sys.exit(main())
