"""ZG-5 (real celery beat, real broker) and ZG-6 (advisory-lock serialization).

Each broken variant must fail the right gate with the cause named.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.backends import commit_all, edit, make_backend
from zerodrift.runner import RunOptions, run


def _run(backend, admin_url, gates):
    commit_all(backend.parent, "variant")
    return run(RunOptions(target=backend, admin_url=admin_url, gates=gates))


def _gate(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _check(result, name):
    return next(c for c in result.checks if c.name == name)


def test_beat_and_serialization_pass_on_the_example(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-5", "ZG-6"]))
    zg5, zg6 = _gate(report, "ZG-5"), _gate(report, "ZG-6")
    assert zg5.status.value == "PASS", (zg5.summary, zg5.error)
    assert zg6.status.value == "PASS", (zg6.summary, zg6.error)
    # beat was stopped as soon as every entry was sent, not after the 30 s timeout
    beat = next(s for s in zg5.evidence if s.title == "celery beat")
    assert beat.duration_s < 15
    for name in ("refresh-matviews-every-5-min", "pii-audit-scanner", "enforce-data-retention"):
        assert f"Sending due task {name}" in beat.output
    assert "seen in pg_locks" in _check(zg6, "refresh path takes an advisory lock").detail
    # four separately started processes, each with its own PYTHONHASHSEED (so its own hash())
    table = next(t for t in zg6.tables if t["title"] == "processes")
    assert [r[0] for r in table["rows"]] == ["A", "B", "C", "D"]
    for column in (1, 2, 3):  # PYTHONHASHSEED, pid, hash('zerodrift')
        assert len({r[column] for r in table["rows"]}) == 4, table["rows"]
    same = _check(zg6, "lock key is the same in every process")
    assert same.status.value == "PASS" and "process A" in same.detail and "process B" in same.detail
    held = _check(zg6, "skips while the lock is held").detail
    assert "process C" in held and "process D" in held and held.count("skipped_already_running") == 2
    # the positive control: D, which skipped while B held the lock, refreshes once it is free
    control = _check(zg6, "succeeds once the lock is free")
    assert control.status.value == "PASS" and "process D" in control.detail and "'success'" in control.detail
    assert table["rows"][3][5].startswith("returned 'skipped_already_running'") and "once the lock was free, returned 'success'" in table["rows"][3][5]


def test_unregistered_task_fails_zg5(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "celery_app.py", '"task": "app.tasks.enforce_data_retention"', '"task": "app.tasks.enforce_data_retention_v2"')
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "FAIL"
    check = _check(zg5, "every scheduled task is registered")
    assert check.status.value == "FAIL"
    assert "enforce-data-retention" in check.detail and "app.tasks.enforce_data_retention_v2" in check.detail


def test_bad_app_path_is_an_error_of_zg5(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'celery_app = "app.celery_app:celery_app"', 'celery_app = "app.celery_app:no_such_app"')
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "ERROR"
    assert "no_such_app" in zg5.error


def test_beat_that_cannot_reach_its_broker_fails_zg5(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'celery_app = "app.celery_app:celery_app"',
         'celery_app = "app.celery_app:celery_app"\ntimeout = 4\n'
         'broker_url = "sqla+postgresql+psycopg://nobody@127.0.0.1:1/nothing"')
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "FAIL"
    sent = _check(zg5, "beat sent every entry")
    assert sent.status.value == "FAIL" and "could not publish" in sent.detail
    assert "refresh-matviews-every-5-min" in sent.detail
    assert _check(zg5, "messages are in the broker").status.value == "FAIL"
    # beat's own exit status is shown as observed (it ran until zerodrift stopped it), never a made-up 1
    beat = next(s for s in zg5.evidence if s.title == "celery beat")
    assert "[zerodrift] beat stopped with SIGTERM" in beat.output


LOCK_VARIANTS = {
    "takes no lock": (
        (('        acquired = conn.execute(\n'
         '            text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": LOCK_NAMESPACE + name}\n'
         '        ).scalar()\n', '        acquired = True\n'),
        ('            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": LOCK_NAMESPACE + name})\n',
         '            pass\n')),
        "refresh path takes an advisory lock", "holding no advisory lock"),
    "waits on the lock": (
        (('text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")',
          'text("SELECT pg_advisory_lock(hashtextextended(:key, 0)) IS NOT NULL")'),),
        "skips while the lock is held", "waits on the lock"),
    "never releases the lock": (
        (('            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": LOCK_NAMESPACE + name})\n',
          '            pass\n'),),
        "no advisory lock leaked after the call after release", "still held after the call returned"),
}


@pytest.mark.parametrize("variant", sorted(LOCK_VARIANTS))
def test_broken_refresh_path_fails_zg6(admin_url, tmp_path, variant):
    edits, check_name, cause = LOCK_VARIANTS[variant]
    backend = make_backend(tmp_path / "repo", commit=False)
    for old, new in edits:
        edit(backend / "app" / "refresh.py", old, new)
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == "FAIL", zg6.summary
    check = _check(zg6, check_name)
    assert check.status.value == "FAIL" and cause in check.detail, check.detail


#: lock keys that differ between worker processes: each looks stable inside one process
PER_PROCESS_KEYS = {
    "hash()": "def _lock_key(name):\n    return hash(LOCK_NAMESPACE + name)\n",
    "process id": "import os\n\n\ndef _lock_key(name):\n    return os.getpid()\n",
    "random": "import random\n\n_SALT = random.getrandbits(62)\n\n\ndef _lock_key(name):\n    return _SALT\n",
}


@pytest.mark.parametrize("variant", sorted(PER_PROCESS_KEYS))
def test_lock_key_that_differs_per_process_fails_zg6(admin_url, tmp_path, variant):
    backend = make_backend(tmp_path / "repo", commit=False)
    refresh = backend / "app" / "refresh.py"
    edit(refresh, "hashtextextended(:key, 0)", "CAST(:key AS bigint)")
    edit(refresh, '{"key": LOCK_NAMESPACE + name}', '{"key": _lock_key(name)}')
    refresh.write_text(refresh.read_text() + "\n\n" + PER_PROCESS_KEYS[variant])
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == "FAIL", zg6.summary
    same = _check(zg6, "lock key is the same in every process")
    assert same.status.value == "FAIL" and "lock key differs between processes" in same.detail, same.detail
    # both keys are named, each with its process
    keys = re.findall(r"\[(-?\d+)\] in process ([A-E])", same.detail)
    assert [p for _, p in keys[:2]] == ["A", "B"] and keys[0][0] != keys[1][0], same.detail
    # the call while B holds its lock takes a lock of its own instead of skipping
    held = _check(zg6, "skips while the lock is held")
    assert held.status.value == "FAIL" and "took its own advisory lock" in held.detail, held.detail
    # the positive control still runs: the path works, it just does not exclude other processes
    assert _check(zg6, "succeeds once the lock is free").status.value == "PASS"


def test_missing_callable_is_an_error_of_zg6(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'callable = "app.refresh:refresh_view"', 'callable = "app.refresh:refresh_views"')
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == "ERROR", zg6.summary
    assert "app.refresh:refresh_views does not exist" in zg6.error and "refresh_views" in zg6.error
    assert "check callable (module:attribute) in [gates.ZG-6]" in zg6.error


def test_refresh_module_that_cannot_import_its_dependency_fails_zg6(admin_url, tmp_path):
    # the configured module exists but needs a package the target lacks: a finding, not a config error
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "refresh.py", "from sqlalchemy import text\n", "from sqlalchemy import text\nimport redis_lock_helpers\n")
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == "FAIL", (zg6.summary, zg6.error)
    check = _check(zg6, "the refresh path's module imports")
    assert check.status.value == "FAIL" and "No module named 'redis_lock_helpers'" in check.detail, check.detail


def test_async_refresh_path_is_run(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    (backend / "app" / "async_refresh.py").write_text(
        "import asyncio\n"
        "from app.refresh import refresh_view as _sync\n\n\n"
        "async def refresh_view(name: str) -> str:\n"
        "    await asyncio.sleep(0)\n"
        "    return await asyncio.to_thread(_sync, name)\n")
    edit(backend / "zerodrift.toml", 'callable = "app.refresh:refresh_view"', 'callable = "app.async_refresh:refresh_view"')
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == "PASS", (zg6.summary, zg6.error)


#: the example's celery_app.py ends with the beat schedule's closing ``)``: settings appended after it
ROUTED = '''
celery_app.conf.update(
    # maintenance tasks go to their own queue (a name: Celery creates the queue), one entry through an option
    task_routes={"app.tasks.enforce_data_retention": {"queue": "maintenance"},
                 "app.tasks.scan_for_*": "maintenance"},
    # a result backend beat cannot use: beat publishes only, it must never set this up
    result_backend="db+postgresql+psycopg://nobody@127.0.0.1:1/results",
)
'''

MISROUTED = '''
from kombu import Exchange, Queue

celery_app.conf.update(
    task_queues=[Queue("celery"), Queue("maintenance", Exchange("maintenance"), routing_key="maintenance")],
    task_create_missing_queues=False,
    task_routes={
        # an exchange no queue is bound to: the broker drops the message
        "app.tasks.enforce_data_retention": {"exchange": "archive", "exchange_type": "direct",
                                             "routing_key": "archive.nightly"},
        # a queue name task_queues does not declare (missing queues are not created)
        "app.tasks.scan_for_pii_contamination": {"queue": "audit"},
        "app.tasks.refresh_all_matviews": {"queue": "maintenance"},
    },
)
'''


def test_beat_follows_the_apps_routes_and_never_touches_its_result_backend(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    app_file = backend / "app" / "celery_app.py"
    app_file.write_text(app_file.read_text() + ROUTED)
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "PASS", (zg5.summary, zg5.error, [(c.name, c.detail) for c in zg5.checks])
    table = next(t for t in zg5.tables if t["title"] == "Beat schedule")
    queues = {row[0]: row[4] for row in table["rows"]}
    assert queues == {"enforce-data-retention": "maintenance", "pii-audit-scanner": "maintenance",
                      "refresh-matviews-every-5-min": "celery"}, table["rows"]
    assert "3 of 3" in _check(zg5, "messages are in the broker").detail
    # the broker is read until every message is found, not for a fixed drain timeout
    drain = next(s for s in zg5.evidence if s.title == "drain the broker with kombu")
    assert drain.duration_s < 3 and "maintenance" in drain.command
    beat = next(s for s in zg5.evidence if s.title == "celery beat")
    assert "--result-backend disabled://" in beat.command and "Couldn't apply" not in beat.output


def test_entry_routed_where_no_queue_receives_it_fails_zg5(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    app_file = backend / "app" / "celery_app.py"
    app_file.write_text(app_file.read_text() + MISROUTED)
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "FAIL", (zg5.summary, zg5.error)
    routed = _check(zg5, "every entry reaches a queue")
    assert routed.status.value == "FAIL"
    assert ("entry enforce-data-retention (task app.tasks.enforce_data_retention): published to exchange 'archive' "
            "(direct), routing key 'archive.nightly', which no queue of the app is bound to") in routed.detail
    assert "entry pii-audit-scanner" in routed.detail and "'audit'" in routed.detail
    assert "refresh-matviews" not in routed.detail
    # the entry that is routed still arrives in its own queue (the positive control beside the finding)
    assert _check(zg5, "messages are in the broker").status.value == "PASS"


def test_app_that_raises_while_loading_names_its_own_frames(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    (backend / "app" / "settings.py").write_text(
        "import os\n\n\ndef broker():\n    return os.environ['BROKER_URL_NOT_SET']\n\n\nBROKER = broker()\n")
    edit(backend / "app" / "celery_app.py", "from celery import Celery\n", "from celery import Celery\nfrom app import settings\n")
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "FAIL", (zg5.summary, zg5.error)
    detail = _check(zg5, "Celery app loads").detail
    assert "KeyError: 'BROKER_URL_NOT_SET'" in detail, detail
    # the target's frames, outermost first, down to the line that raised; no importlib or probe frames
    assert "app/celery_app.py:6 in <module>" in detail and "app/settings.py:8 in <module>" in detail, detail
    assert detail.index("app/settings.py:8") < detail.index("app/settings.py:5 in broker"), detail
    assert "importlib" not in detail and "import_object" not in detail


STRUCTURED_REFRESH = '''"""The refresh path returning a structured result, as many applications do."""
import dataclasses
import enum

from app.refresh import refresh_view as _refresh


class Status(enum.Enum):
    REFRESHED = "refreshed"
    SKIPPED_LOCK_HELD = "skipped_lock_held"


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    view: str
    status: Status


def refresh_view(name: str) -> RefreshResult:
    outcome = _refresh(name)
    return RefreshResult(name, Status.SKIPPED_LOCK_HELD if outcome == "skipped_already_running" else Status.REFRESHED)
'''

#: how the outcome is read -> (zerodrift.toml lines, expected status, text in the evidence)
READERS = {
    "attribute path": ('result_path = "status"\nskipped = "SKIPPED_LOCK_HELD"\nsuccess = "REFRESHED"', "PASS",
                       "(read by result_path status: 'SKIPPED_LOCK_HELD')"),
    "regex over str()": ("result_regex = 'status=<Status\\.(\\w+)'\nskipped = \"SKIPPED_LOCK_HELD\"\nsuccess = \"REFRESHED\"",
                         "PASS", "(read by result_regex 'status=<Status\\\\.(\\\\w+)': 'SKIPPED_LOCK_HELD')"),
    "no reader": ('skipped = "SKIPPED_LOCK_HELD"\nsuccess = "REFRESHED"', "FAIL", "(expected 'SKIPPED_LOCK_HELD')"),
    "wrong path": ('result_path = "state"\nskipped = "SKIPPED_LOCK_HELD"\nsuccess = "REFRESHED"', "ERROR",
                   "result_path 'state': the result (RefreshResult: RefreshResult(view='mv_allocation_summary', "
                   "status=<Status.SKIPPED_LOCK_HELD: 'skipped_lock_held'>)) has no attribute or key 'state' "
                   "(it has: view, status)"),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_structured_refresh_result_is_read_as_configured(admin_url, tmp_path, reader):
    lines, status, shown = READERS[reader]
    backend = make_backend(tmp_path / "repo", commit=False)
    (backend / "app" / "structured_refresh.py").write_text(STRUCTURED_REFRESH)
    edit(backend / "zerodrift.toml", 'callable = "app.refresh:refresh_view"', 'callable = "app.structured_refresh:refresh_view"')
    edit(backend / "zerodrift.toml", 'skipped = "skipped_already_running"\nsuccess = "success"', lines)
    zg6 = _gate(_run(backend, admin_url, ["ZG-6"]), "ZG-6")
    assert zg6.status.value == status, (zg6.summary, zg6.error)
    if status == "ERROR":
        assert shown in zg6.error and "check result_path / result_regex in [gates.ZG-6]" in zg6.error, zg6.error
        return
    held = _check(zg6, "skips while the lock is held").detail
    # the evidence shows the raw result beside what was read from it
    assert "RefreshResult(view='mv_allocation_summary', status=<Status.SKIPPED_LOCK_HELD" in held, held
    assert shown in held, held


AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of its own: other runs use other numbers
#: the app's Redis key prefix (kombu's global_keyprefix): the drain must read the keys beat writes
REDIS_PREFIX = "zg5test:"


def _options(url):
    return {"global_keyprefix": REDIS_PREFIX} if url.startswith("redis") else {}


def _broker_or_skip(url):
    kombu = pytest.importorskip("kombu")
    if url.startswith("redis"):
        pytest.importorskip("redis", reason="the redis client library is not installed (pip install redis)")
    try:
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure means the broker is not there
        pytest.skip(f"no broker answers at {url}: {exc}")


def _publish_foreign(url, queue):
    """Two well-formed task messages of another sender in ``queue``: the ones a real worker
    or another app's beat would leave there."""
    from kombu import Connection, Queue

    with Connection(url, transport_options=_options(url)) as conn:
        producer = conn.Producer()
        for n in (1, 2):
            producer.publish({"n": n}, routing_key=queue, declare=[Queue(queue)], serializer="json",
                             headers={"task": "app.tasks.refresh_all_matviews", "id": f"foreign-{n}",
                                      "origin": "gen1@another-host"})


def _left_in(url, queue):
    """The ids (or raw bodies) of the messages still in ``queue``, read without removing them."""
    from kombu import Connection, Queue

    with Connection(url) as conn:
        if url.startswith("redis"):
            client = conn.default_channel.client
            left = sorted((json.loads(raw).get("headers") or {}).get("id", "?") if raw.startswith(b'{"body"')
                          else raw.decode() for raw in client.lrange(REDIS_PREFIX + queue, 0, -1))
            client.delete(*client.keys(f"*{queue}*"))  # the list and kombu's binding sets of this queue
            return left
        left, simple = [], conn.SimpleQueue(Queue(queue))
        try:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                left.append(message.headers.get("id"))
        finally:
            simple.close()  # unacknowledged: requeued, and deleted below
        conn.default_channel.queue_delete(queue)
        return sorted(left)


@pytest.mark.parametrize("url", [AMQP_URL, REDIS_URL], ids=["rabbitmq", "redis"])
def test_foreign_messages_in_a_real_broker_are_left_in_place_and_not_counted(admin_url, tmp_path, url):
    _broker_or_skip(url)
    queue = f"zg5-{uuid.uuid4().hex[:12]}"  # a queue of this test alone
    backend = make_backend(tmp_path / "repo", commit=False)
    app_file = backend / "app" / "celery_app.py"
    app_file.write_text(app_file.read_text() + f"\ncelery_app.conf.task_default_queue = {queue!r}\n"
                        f"celery_app.conf.broker_transport_options = {_options(url)!r}\n")
    edit(backend / "zerodrift.toml", 'celery_app = "app.celery_app:celery_app"',
         f'celery_app = "app.celery_app:celery_app"\nbroker_url = "{url}"')
    _publish_foreign(url, queue)
    if url.startswith("redis"):  # a message no kombu transport can decode, ahead of beat's
        from kombu import Connection

        with Connection(url) as conn:
            conn.default_channel.client.lpush(REDIS_PREFIX + queue, '{"foreign":1}')
    try:
        zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    finally:
        left = _left_in(url, queue)
    assert zg5.status.value == "PASS", (zg5.summary, zg5.error, [(c.name, c.detail) for c in zg5.checks])
    inbox = _check(zg5, "messages are in the broker").detail
    expected_foreign = 3 if url.startswith("redis") else 2
    # only beat's three messages count, named by beat's own origin; the others are named and left
    assert inbox.startswith("3 messages from this beat (gen") and "3 of 3" in inbox, inbox
    assert f"{expected_foreign} foreign messages seen and left in place" in inbox, inbox
    table = next(t for t in zg5.tables if t["title"] == "Foreign messages left in the broker")
    assert sorted(r[2] for r in table["rows"] if r[2] != "(none)") == ["foreign-1", "foreign-2"], table["rows"]
    # the broker still holds exactly the foreign messages: beat's were consumed, no worker will run them
    assert left == sorted(["foreign-1", "foreign-2"] + (['{"foreign":1}'] if url.startswith("redis") else [])), left
    if url.startswith("redis"):
        assert any(r[4].startswith("undecodable") for r in table["rows"]), table["rows"]


def test_beat_that_crashes_at_start_names_its_exit_and_exception(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    app_file = backend / "app" / "celery_app.py"
    # the app loads in zerodrift's probe, but raises in the `celery beat` process
    app_file.write_text("import sys\n\nif 'beat' in sys.argv:\n    raise RuntimeError('no beat on this host')\n"
                        + app_file.read_text())
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "FAIL", (zg5.summary, zg5.error)
    sent = _check(zg5, "beat sent every entry")
    assert re.match(r"celery beat exited 2 after \d+\.\d\d s: RuntimeError: no beat on this host", sent.detail), sent.detail
    assert "never sent within" not in zg5.summary and "celery beat exited 2" in zg5.summary
    beat = next(s for s in zg5.evidence if s.title == "celery beat")
    assert beat.duration_s < 15 and "[zerodrift] beat stopped" not in beat.output


def test_broker_client_library_missing_is_an_environment_error_of_zg5(admin_url, tmp_path):
    pytest.importorskip("kombu")
    try:
        import librabbitmq  # noqa: F401
        pytest.skip("librabbitmq is installed: this test needs a transport whose client library is missing")
    except ImportError:
        pass
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'celery_app = "app.celery_app:celery_app"',
         'celery_app = "app.celery_app:celery_app"\nbroker_url = "librabbitmq://guest:guest@127.0.0.1:5672//"')
    zg5 = _gate(_run(backend, admin_url, ["ZG-5"]), "ZG-5")
    assert zg5.status.value == "ERROR" and zg5.environment_error, (zg5.summary, zg5.error)
    assert "kombu's librabbitmq transport" in zg5.error and "pip install 'kombu[librabbitmq]'" in zg5.error, zg5.error
    assert "No module named 'librabbitmq'" in zg5.error, zg5.error


def test_beat_log_of_a_missing_broker_client_library_names_the_transport(tmp_path):
    import subprocess
    import sys

    from zerodrift.gates.zg5_beat import _last_exception, _missing_client_library

    (tmp_path / "capp.py").write_text("from celery import Celery\napp = Celery('x')\n")
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "capp:app", "-b", "librabbitmq://127.0.0.1//", "beat",
                          "-s", str(tmp_path / "s")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    log = out.stdout + out.stderr
    assert out.returncode != 0
    exception = _last_exception(log)
    assert exception == "ModuleNotFoundError: No module named 'librabbitmq'", exception
    assert _missing_client_library(log, exception) == "librabbitmq"
    # the positive control: an app's own exception is no missing library
    assert _missing_client_library("Traceback ...\nRuntimeError: no beat", "RuntimeError: no beat") is None
