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

**One script directory for heads, history and the upgrade.** ``alembic heads`` and
``alembic history`` build a ``ScriptDirectory`` from the config alone and never run
``env.py``; ``alembic upgrade`` builds one the same way, then runs ``env.py``, which may
change it before any revision is read: ``context.script.version_locations = [...]``
(the pattern Alembic's maintainers point to for versions folders chosen at run time,
alembic issue 570) takes effect because the revision map is loaded lazily, on the first
``fn(rev, context)`` call inside ``context.run_migrations()``. So the ``heads``,
``history`` and ``script`` ops here first run ``env.py`` the way ``alembic current``
does — an :class:`~alembic.runtime.environment.EnvironmentContext` with
``dont_mutate=True`` (no version table is created) and a migration function that
returns no step — and then read the revisions from *that* ``ScriptDirectory`` object,
as ``env.py`` left it (also when ``env.py`` stopped with an error: what it set before
stopping counts, and the error is reported). ``env.py`` setting ``version_locations``
through ``config.set_main_option`` after the script directory was built changes nothing
for ``alembic upgrade`` either, and so nothing here. The job's answer holds
``"script"``: ``script_location`` (as configured and as resolved, ``package:path`` and
``%(here)s`` forms resolved by Alembic itself), the configured and the effective version
locations, and each location's revision count and heads. A ``heads`` or ``history`` op
whose script directory holds no revision at all fails, and the answer holds
``"no_revisions"`` (the same description): a configuration error, not a finding.

**How the target runs alembic** (request fields, from ``[target]``):

* ``flask_app`` (``module:create_app`` or ``module:app``): the app (the factory is called
  once per process, with no argument) is entered with ``app.app_context()`` around every
  job, and with Flask-Migrate the config is the app's own
  (``app.extensions["migrate"].migrate.get_config(<folder of alembic.ini>)``, which sets
  ``script_location`` as ``flask db`` does).
* ``alembic_runner`` (``module:function``): every alembic command of the job is run as
  ``function(command, config)``, where ``command`` is a callable taking the alembic
  ``Config`` (e.g. ``lambda config: alembic.command.upgrade(config, "head")``). The hook
  must call ``command(config)`` once — in a worker thread, an event loop, a framework's
  context — and may return its result. Without it, ``command(config)`` is called here.
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


class NoRevisions(Exception):
    """The script directory the target's alembic run uses holds no revision: a configuration error."""


class Setup:
    """How the target runs alembic for one job: its ``Config`` (alembic.ini, or the Flask-Migrate
    app's), the Flask app context around the job (``flask_app``) and the runner hook
    (``alembic_runner``); see the module docstring."""

    _apps: dict = {}  #: flask_app path -> app: the factory is called once per process

    def __init__(self, request) -> None:
        from alembic.config import Config

        self.request = request
        self.app_context = None
        self.hook = None
        if request.get("alembic_runner"):
            from import_object import load_object

            self.hook = load_object(request["alembic_runner"])
            if not callable(self.hook):
                raise TypeError(f"target.alembic_runner {request['alembic_runner']} is a "
                                f"{type(self.hook).__name__}, not a function")
        migrate = None
        if request.get("flask_app"):
            app = self._flask_app(request["flask_app"])
            self.app_context = app.app_context()
            self.app_context.push()
            migrate = app.extensions.get("migrate") if hasattr(app, "extensions") else None
        if migrate is not None and hasattr(migrate, "migrate"):  # Flask-Migrate: the config `flask db` uses
            self.cfg = migrate.migrate.get_config(os.path.dirname(request["alembic_ini"]))
        else:
            self.cfg = Config(request["alembic_ini"])
        self.script = None  #: the ScriptDirectory as env.py left it (see resolve)
        self.described = None

    @classmethod
    def _flask_app(cls, path):
        if path not in cls._apps:
            from import_object import load_object

            obj = load_object(path)
            app = obj if hasattr(obj, "app_context") else obj()
            if not hasattr(app, "app_context"):
                raise TypeError(f"target.flask_app {path} gave a {type(app).__name__}, not a Flask app: "
                                "name the app (module:app) or its factory (module:create_app)")
            cls._apps[path] = app
        return cls._apps[path]

    def close(self) -> None:
        if self.app_context is not None:
            self.app_context.pop()
            self.app_context = None

    def call(self, command):
        """Run ``command(config)`` the way the target runs alembic (its hook, or directly)."""
        if self.hook is not None:
            return self.hook(command, self.cfg)
        return command(self.cfg)

    def resolve(self):
        """Run env.py as ``alembic current`` does (``dont_mutate=True``, no step applied) and return
        the ScriptDirectory as env.py left it; ``self.described`` says what it holds."""
        from alembic.runtime.environment import EnvironmentContext
        from alembic.script import ScriptDirectory

        made = {}
        reached = []

        def no_steps(rev, context):
            reached.append(True)
            return []

        def command(config):
            made["config"] = config
            try:
                made["script"] = script = ScriptDirectory.from_config(config)
            except Exception as exc:  # no script_location, or a folder that does not exist: the configuration's
                made["no_script_directory"] = f"{type(exc).__name__}: {exc}"
                raise
            with EnvironmentContext(config, script, fn=no_steps, dont_mutate=True):
                script.run_env()

        env_error = ""
        # env.py's own chatter (alembic's INFO lines, prints) is shown only when it stopped with an error
        chatter = io.StringIO()
        disabled = logging.root.manager.disable
        logging.disable(logging.INFO)
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                self.call(command)
        except SystemExit as exc:
            env_error = f"SystemExit: {exc.code}"
        except Exception as exc:  # env.py stopped: what it set before stopping still counts
            env_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        finally:
            logging.disable(disabled)
        if env_error:
            print(f"env.py stopped while the script directory was resolved: {env_error}\n{chatter.getvalue()}".rstrip())
        if "no_script_directory" in made:  # no script_location, or it names no folder: nothing to read revisions from
            cfg = made["config"]
            self.described = {"script_location": cfg.get_alembic_option("script_location") or "", "dir": "",
                              "configured_locations": [], "version_locations": [], "exists": {}, "locations": {},
                              "revisions": 0, "heads": [], "config_file": str(cfg.config_file_name or ""),
                              "env_error": "", "env_reached_migrations": False,
                              "no_script_directory": made["no_script_directory"]}
            return None
        if "script" not in made:  # the runner hook never called the command
            raise RuntimeError(env_error or "target.alembic_runner did not call command(config)")
        self.script = made["script"]
        self.described = describe(made["config"], self.script, env_error, bool(reached))
        return self.script


def describe(cfg, script, env_error: str, reached: bool) -> dict:
    """What a resolved script directory holds (JSON): script_location (configured, resolved),
    version_locations (configured, effective), and per effective location its revisions and heads."""
    locations = [str(p) for p in script._version_locations]
    per = {loc: {"revisions": 0, "heads": []} for loc in locations}
    revisions = list(script.walk_revisions("base", "heads")) if locations else []
    for rev in revisions:
        folder = os.path.dirname(os.path.abspath(rev.path))
        entry = per.setdefault(folder, {"revisions": 0, "heads": []})
        entry["revisions"] += 1
        if rev.is_head:
            entry["heads"].append(rev.revision)
    from alembic.script import ScriptDirectory

    try:  # what the config alone gives (what `alembic heads` reads), to show what env.py changed
        configured = [str(p) for p in ScriptDirectory.from_config(cfg)._version_locations]
    except Exception:
        configured = []
    return {"script_location": cfg.get_alembic_option("script_location") or "", "dir": str(script.dir),
            "configured_locations": configured,
            "version_locations_option": cfg.get_alembic_option("version_locations") or "",
            "version_locations": locations, "exists": {loc: os.path.isdir(loc) for loc in locations},
            "locations": per, "revisions": len(revisions), "heads": sorted(script.get_heads()) if revisions else [],
            "config_file": str(cfg.config_file_name or ""), "env_error": env_error, "env_reached_migrations": reached}


def _resolved(setup):
    script = setup.resolve()
    if script is None or (not setup.described["revisions"] and not setup.described["env_error"]):
        raise NoRevisions(f"no revision in the script directory alembic uses: {setup.described}")
    return script


def _run_step(setup, step):
    from alembic import command

    cfg = setup.cfg
    op = step["op"]
    if op == "script":
        setup.resolve()
        return setup.described
    if op == "heads":
        script = _resolved(setup)
        heads = sorted(script.get_heads())
        for head in heads:
            print(f"{head} (head)")
        return heads
    if op == "upgrade":
        setup.call(lambda config: command.upgrade(config, step["revision"]))
        return None
    if op == "downgrade":
        setup.call(lambda config: command.downgrade(config, step["revision"]))
        return None
    if op == "current":
        buf = io.StringIO()
        outer = cfg.stdout
        cfg.stdout = buf
        try:
            setup.call(command.current)
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
        return _history(_resolved(setup))
    raise ValueError(f"unknown op {op!r}")


def _history(script):
    """Every revision from base to head(s) in an order where each comes after its
    ``down_revision``: ``{"revision", "down_revisions", "path", "irreversible"}``, where
    ``irreversible`` is the text of the ``raise`` statement when ``downgrade()`` consists
    of nothing but a ``raise`` (and a docstring): a downgrade declared impossible."""
    import ast

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

    os.chdir(request.get("cwd") or os.getcwd())
    results = []
    failed = False
    setup = None
    no_revisions = None
    try:
        for step in request["steps"]:
            if failed:
                results.append({"op": step["op"], "ok": False, "skipped": True, "duration_s": 0.0,
                                "output": "", "value": None, "error": "not run: an earlier step failed"})
                continue
            buf = io.StringIO()
            root = logging.getLogger()
            handler = logging.StreamHandler(buf)
            handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
            start = time.perf_counter()
            value, error = None, ""
            try:
                with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                    root.addHandler(handler)
                    try:
                        if setup is None:  # the app factory and the hook's module run here, their output captured
                            setup = Setup(request)
                        setup.cfg.stdout = buf
                        value = _run_step(setup, step)
                    finally:
                        root.removeHandler(handler)
                ok = True
            except SystemExit as exc:  # env.py may sys.exit("message")
                ok, error = False, f"SystemExit: {exc.code}"
            except NoRevisions:
                ok, error = False, "no revision found in the script directory alembic uses"
                no_revisions = setup.described
            except BaseException as exc:  # report any failure of the target's code
                ok = False
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                buf.write(traceback.format_exc())
            failed = failed or not ok
            results.append({"op": step["op"], "revision": step.get("revision"), "ok": ok, "skipped": False,
                            "duration_s": time.perf_counter() - start, "output": buf.getvalue(),
                            "value": value, "error": error})
    finally:
        if setup is not None:
            setup.close()
    answer = {"steps": results, "alembic_version": alembic_version}
    if setup is not None and setup.described is not None:
        answer["script"] = setup.described
    if no_revisions is not None:
        answer["no_revisions"] = no_revisions
    return answer


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
