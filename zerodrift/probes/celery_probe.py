"""Celery probe: inspect an app's beat schedule, seed beat's schedule store, drain a broker.

Executed by the *target's* interpreter (standard library, celery and kombu, which
the target has). Requests on stdin, one JSON object per line, answered in turn::

    {"app": "module:attribute", "mode": "inspect" | "declare" | "drain",
     "schedule_file": "/tmp/.../beat-schedule",       # inspect: seed it here
     "broker": "sqla+postgresql+psycopg://...",         # declare, drain
     "queues": ["celery"],                              # declare, drain
     "expect": [["celery", "app.tasks.x"], ...], "timeout_s": 10,    # drain
     "origin_pid": 1234}                                # drain: the beat process

``inspect`` imports the app and its configured task modules, lists the beat
entries (task name, schedule text, args) with the destination Celery's own router
gives each (see :func:`destination`) and the registered task names, and — with
``schedule_file`` — writes every entry into a ``celery.beat.PersistentScheduler``
store with a last run long ago, so a real ``celery beat`` started on that file
finds every entry due at once. ``declare`` declares the app's queues (with their
bindings) on the broker, as a worker does when it starts. ``drain`` reads the given
queues with kombu, all in turn, consumes only the messages the beat process sent
(their ``origin`` header) and stops as soon as every expected (queue, task) pair was
seen among them; other messages are left in the broker.
Answer: one line ``ZERODRIFT-RESULT {json}``; a failed ``inspect`` carries ``stage`` and
``kind`` (config, environment or target) as ``import_object.py`` describes them.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import traceback

from import_object import LoadError, load_object  # a sibling probe: this folder is sys.path[0]

RESULT_PREFIX = "ZERODRIFT-RESULT "
#: Celery's result backend alias that stores nothing (celery.backends.base.DisabledBackend)
NO_RESULTS = "disabled://"
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
        args, kwargs = list(entry.get("args") or ()), dict(entry.get("kwargs") or {})
        row = {"task": entry.get("task"), "schedule": str(entry.get("schedule")), "args": args}
        try:
            row.update(destination(app, entry.get("task"), args, kwargs, options))
        except Exception as exc:  # the app's router raised (e.g. a queue missing from task_queues)
            row.update({"exchange": None, "routing_key": None, "queues": [],
                        "route_error": "".join(traceback.format_exception_only(type(exc), exc)).strip()})
        entries[name] = row
    answer = {"ok": True, "entries": entries, "registered": sorted(app.tasks.keys()),
              "default_queue": default_queue, "app_queues": sorted(app.amqp.queues),
              "celery_version": __import__("celery").__version__}
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


def _name(value):
    return getattr(value, "name", value)


def destination(app, task_name, args, kwargs, options):
    """Where ``celery beat`` publishes one entry, resolved the way Celery does it.

    Beat calls ``task.apply_async(**entry.options)`` for a registered task (which merges
    the task's own ``queue``/``exchange``/``routing_key`` options under the entry's) or
    ``send_task`` otherwise; ``send_task`` asks the app's router
    (``app.amqp.router.route``: ``task_routes``, ``task_queues``, ``task_default_queue``)
    and ``send_task_message`` (celery/app/amqp.py) turns the routed options into an
    exchange and routing key: a direct exchange without both becomes the default
    exchange ``''`` with the queue's name as the key. Returns ``exchange``,
    ``exchange_type``, ``routing_key``, the routed ``queue`` (or None) and ``queues``:
    the queues a broker delivers that message to — the routed queue (beat declares
    it) or the app's queues bound to that exchange and key. Raises what the router raises.
    """
    options = dict(options)
    task = app.tasks.get(task_name)
    if task is not None:
        options = dict(task._get_exec_options(), **options)
    routed = app.amqp.router.route(options, task_name, args, kwargs, task)
    queue, exchange = routed.get("queue"), _name(routed.get("exchange"))
    routing_key, exchange_type = routed.get("routing_key"), routed.get("exchange_type")
    if queue is None and exchange is None:
        queue = app.amqp.default_queue
    if isinstance(queue, str):
        queue = app.amqp.queues[queue]
    if exchange_type is None:
        exchange_type = queue.exchange.type if queue is not None and queue.exchange is not None else "direct"
    if (not exchange or not routing_key) and exchange_type == "direct":
        exchange, routing_key = "", queue.name if queue is not None else routing_key
    elif exchange is None:
        exchange = _name(queue.exchange) or _name(app.amqp.default_exchange)
        routing_key = routing_key or queue.routing_key or app.conf.task_default_routing_key
    candidates = list(app.amqp.queues.values()) + ([queue] if queue is not None else [])
    bound = sorted({q.name for q in candidates if _receives(q, exchange, routing_key)})
    return {"exchange": exchange, "exchange_type": exchange_type, "routing_key": routing_key,
            "queue": queue.name if queue is not None else None, "queues": bound}


def _receives(queue, exchange, routing_key):
    """Whether a broker delivers a message published to ``exchange`` with ``routing_key``
    to ``queue`` (AMQP 0-9-1 model as RabbitMQ documents it: the default exchange ``''``
    routes to the queue named by the key; direct: equal keys; topic: ``*`` one word,
    ``#`` zero or more; fanout: every bound queue; headers are not evaluated)."""
    if exchange == "":
        return queue.name == routing_key
    bindings = [(queue.exchange, queue.routing_key)] + [(b.exchange, b.routing_key) for b in (queue.bindings or ())]
    for bound_exchange, key in bindings:
        if bound_exchange is None or _name(bound_exchange) != exchange:
            continue
        kind = getattr(bound_exchange, "type", "direct")
        if kind in ("fanout", "headers") or (kind == "direct" and key == routing_key):
            return True
        if kind == "topic" and _topic_match(key or "", routing_key or ""):
            return True
    return False


def _topic_match(pattern, key):
    words, parts = pattern.split("."), key.split(".")

    def match(i, j):
        if i == len(words):
            return j == len(parts)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and words[i] in ("*", parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


def transport_failure(exc):
    """The kombu transport module (e.g. ``redis``, ``librabbitmq``) whose client library could
    not be imported when ``exc`` was raised, or None. kombu imports a transport's client library
    when the transport is first used; a missing one surfaces as ImportError, or as
    AttributeError on the ``None`` kombu keeps in its place (kombu/transport/redis.py)."""
    if not isinstance(exc, (ImportError, AttributeError)):
        return None
    if isinstance(exc, AttributeError) and "'NoneType' object" not in str(exc):
        return None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        parts = frame.filename.replace(os.sep, "/").split("/")
        if len(parts) >= 3 and parts[-3] == "kombu" and parts[-2] == "transport":
            return parts[-1][:-3]
    return None


def _connect(app, broker):
    """A kombu Connection to ``broker`` with the app's ``broker_transport_options`` (key
    prefix, priority steps: as beat publishes), whose transport loaded; a missing client
    library raises LoadError of kind ``environment`` naming the transport and the package."""
    try:  # kombu loads the transport module (and so its client library) in Connection()
        conn = app.connection_for_write(broker)
        conn.transport  # noqa: B018
    except Exception as exc:
        transport = transport_failure(exc)
        if transport is None:
            raise
        raise LoadError(f"load kombu's {transport} transport (install its client library in the target's "
                        f"environment: pip install 'kombu[{transport}]')", "environment", exc) from exc
    return conn


def declare(request):
    """Declare the app's queues named in ``queues`` (with their exchanges and bindings) on
    the broker, as a worker does at start-up, so a publish to an exchange finds them."""
    app = load_app(request["app"])
    with _connect(app, request["broker"]) as conn:
        channel = conn.default_channel
        for name in request["queues"]:
            queue = app.amqp.queues.get(name)
            if queue is not None:
                queue(channel).declare()
    return {"ok": True, "declared": sorted(request["queues"])}


def _row(queue, headers, why=""):
    headers = headers if isinstance(headers, dict) else {}
    return {"queue": queue, "task": headers.get("task"), "id": headers.get("id"),
            "origin": headers.get("origin"), "why": why}


def _why_foreign(headers, origin):
    if not isinstance(headers, dict) or "task" not in headers:
        return "no Celery protocol-2 headers"
    return f"origin {headers.get('origin')!r}, not {origin!r}"


def _drain_redis_lists(conn, names, origin, ours, foreign, seen):
    """One pass over kombu's Redis lists of ``names`` (every priority step) without popping:
    LRANGE reads them, LREM removes exactly the items ``origin`` sent. Any other item,
    undecodable ones included, is never touched. Returns whether a new item was seen."""
    channel = conn.default_channel
    client = channel.client
    # kombu prefixes the keys of the commands it sends itself (global_keyprefix), not LRANGE/LREM
    prefix = getattr(channel, "global_keyprefix", "") or ""
    got = False
    for name in names:
        for key in dict.fromkeys(prefix + channel._q_for_pri(name, pri) for pri in channel.priority_steps):
            for raw in client.lrange(key, 0, -1):
                if (key, raw) in seen:
                    continue
                seen.add((key, raw))
                got = True
                try:
                    headers = json.loads(raw)["headers"]
                except Exception as exc:  # not a kombu message: foreign, left where it is
                    foreign.append(_row(name, None, f"undecodable: {type(exc).__name__}: {exc}"))
                    continue
                if isinstance(headers, dict) and headers.get("origin") == origin:
                    if client.lrem(key, 1, raw):
                        ours.append(_row(name, headers))
                else:
                    foreign.append(_row(name, headers, _why_foreign(headers, origin)))
    return got


def _drain_gets(queues, origin, ours, foreign):
    """One round of basic_get on each queue: ``origin``'s messages are acknowledged, any other
    stays unacknowledged, so the broker requeues it when the channel closes (AMQP 0-9-1;
    kombu's virtual transports restore unacknowledged messages on close). basic_get is not
    limited by a prefetch count, so held messages never hold back the next one."""
    got = False
    for name, queue in queues.items():
        try:
            message = queue.get(block=False)
        except queue.Empty:
            continue
        except Exception as exc:  # a message kombu cannot read: foreign
            foreign.append(_row(name, None, f"undecodable: {type(exc).__name__}: {exc}"))
            got = True
            continue
        got = True
        headers = message.headers
        if isinstance(headers, dict) and headers.get("origin") == origin:
            ours.append(_row(name, headers))
            message.ack()
        else:
            foreign.append(_row(name, headers, _why_foreign(headers, origin)))
    return got


def drain(request):
    """Read the queues until each (queue, task) pair in ``expect`` was seen as often as
    listed among the messages sent by ``origin_pid`` (or ``timeout_s`` passed: beat may
    still be publishing). A message is this run's when its Celery protocol-2 ``origin``
    header is ``gen<pid>@<hostname>`` of the beat process (celery.app.amqp.as_task_v2 sets
    it with celery.utils.nodenames.anon_nodename); those are acknowledged (removed), so no
    worker runs them later. Any other message — another sender's, or one that cannot be
    decoded — is foreign: listed, never counted, never consumed. Redis lists are read
    without popping (see :func:`_drain_redis_lists`); other transports with basic_get
    (see :func:`_drain_gets`). Answer: ``messages`` (ours) and ``foreign``, each with
    queue, task, id, origin."""
    import time
    from collections import Counter

    from celery.utils.nodenames import anon_nodename

    origin = anon_nodename().replace(f"gen{os.getpid()}@", f"gen{int(request['origin_pid'])}@", 1)
    ours, foreign, seen = [], [], set()
    expect = Counter(tuple(pair) for pair in request.get("expect") or ())
    deadline = time.monotonic() + float(request.get("timeout_s", 5.0))
    app = load_app(request["app"])
    app_queues = app.amqp.queues
    with _connect(app, request["broker"]) as conn:
        if conn.transport.driver_type == "redis":
            def one_pass():
                return _drain_redis_lists(conn, request["queues"], origin, ours, foreign, seen)
            queues = {}
        else:
            # the app's own Queue (exchange, type, bindings) where it has one, as its workers consume it
            queues = {name: conn.SimpleQueue(app_queues.get(name) or name) for name in request["queues"]}

            def one_pass():
                return _drain_gets(queues, origin, ours, foreign)
        try:
            while True:
                got = one_pass()
                if not expect - Counter((m["queue"], m["task"]) for m in ours) or time.monotonic() > deadline:
                    break
                if not got:
                    time.sleep(0.05)
        finally:
            for queue in queues.values():
                queue.close()
    return {"ok": True, "origin": origin, "messages": ours, "foreign": foreign}


def main():
    # like the beat zerodrift starts: the app's result backend is never set up (a database backend
    # creates its tables when first used); Celery's settings read this variable before the app's own
    os.environ["CELERY_RESULT_BACKEND"] = NO_RESULTS
    for line in sys.stdin:  # one request per line, answered in turn; the app stays imported
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = {"inspect": inspect, "declare": declare, "drain": drain}[request["mode"]](request)
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
