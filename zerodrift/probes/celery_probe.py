"""Celery probe: inspect an app's beat schedule, seed beat's schedule store, drain a broker.

Executed by the *target's* interpreter (standard library, celery and kombu, which
the target has). Requests on stdin, one JSON object per line, answered in turn::

    {"app": "module:attribute", "mode": "inspect" | "drain",
     "schedule_file": "/tmp/.../beat-schedule",       # inspect: seed it here
     "broker": "sqla+postgresql+psycopg://...",         # drain
     "queues": ["celery"], "idle_s": 0.5}              # drain

``inspect`` imports the app and its configured task modules, lists the beat
entries (task name, schedule text, args, queue) and the registered task names,
and — with ``schedule_file`` — writes every entry into a
``celery.beat.PersistentScheduler`` store with a last run long ago, so a real
``celery beat`` started on that file finds every entry due at once. ``drain``
consumes the messages in the given queues with kombu and reports their task names.
Answer: one line ``ZERODRIFT-RESULT {json}``; a failed ``inspect`` carries ``stage`` and
``kind`` (config, environment or target) as ``import_object.py`` describes them.
"""

from __future__ import annotations

import datetime
import json
import sys
import traceback

from import_object import LoadError, load_object  # a sibling probe: this folder is sys.path[0]

RESULT_PREFIX = "ZERODRIFT-RESULT "
LONG_AGO = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def load_app(path):
    """The Celery app ``module:attribute`` names (attribute default ``app``); raises
    import_object.LoadError saying at which stage it failed and whose failure it is."""
    return load_object(path, "app")


def inspect(request):
    app = load_app(request["app"])
    try:
        app.loader.import_default_modules()
        schedule = app.conf.beat_schedule or {}
    except BaseException as exc:  # the app's task modules or its configuration raised
        raise LoadError("import the app's task modules and read its configuration", "target", exc) from exc
    default_queue = app.conf.task_default_queue or "celery"
    entries = {}
    for name, entry in schedule.items():
        options = dict(entry.get("options") or {})
        entries[name] = {
            "task": entry.get("task"),
            "schedule": str(entry.get("schedule")),
            "args": list(entry.get("args") or ()),
            "queue": options.get("queue") or default_queue,
        }
    answer = {"ok": True, "entries": entries, "registered": sorted(app.tasks.keys()),
              "default_queue": default_queue, "celery_version": __import__("celery").__version__}
    if request.get("schedule_file"):
        from celery.beat import PersistentScheduler

        scheduler = PersistentScheduler(app=app, schedule_filename=request["schedule_file"], lazy=True)
        scheduler.setup_schedule()
        seeded = []
        for name, entry in scheduler.schedule.items():
            entry.last_run_at = LONG_AGO
            seeded.append(name)
        scheduler.sync()
        scheduler.close()
        answer["seeded"] = sorted(seeded)
        answer["seeded_last_run_at"] = LONG_AGO.isoformat()
    return answer


def drain(request):
    """Consume every message in the queues; keep polling until each task name in
    ``expect`` was seen or ``timeout_s`` passed (beat may still be publishing)."""
    import time

    from kombu import Connection

    messages = []
    expect = set(request.get("expect") or ())
    deadline = time.monotonic() + float(request.get("timeout_s", 5.0))
    with Connection(request["broker"]) as conn:
        for queue_name in request["queues"]:
            queue = conn.SimpleQueue(queue_name)
            try:
                while True:
                    try:
                        message = queue.get(block=True, timeout=request.get("idle_s", 0.2))
                    except queue.Empty:
                        if expect - {m["task"] for m in messages} and time.monotonic() < deadline:
                            continue
                        break
                    headers = message.headers or {}
                    messages.append({"queue": queue_name, "task": headers.get("task"), "id": headers.get("id")})
                    message.ack()
            finally:
                queue.close()
    return {"ok": True, "messages": messages}


def main():
    for line in sys.stdin:  # one request per line, answered in turn; the app stays imported
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = inspect(request) if request["mode"] == "inspect" else drain(request)
        except LoadError as exc:
            answer = exc.answer()
        except BaseException as exc:  # report any failure of the target's code
            answer = {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                      "traceback": traceback.format_exc(limit=8)}
        sys.stdout.write(RESULT_PREFIX + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
