"""Models probe: compare the target's SQLAlchemy metadata with a database, as autogenerate does.

Executed by the *target's* interpreter (it imports the standard library, SQLAlchemy and
Alembic, which the target has). Request on stdin, one JSON object per line::

    {"metadata": "app.models:Base.metadata", "url_env": "MIGRATION_DATABASE_URL",
     "alembic_ini": "/abs/alembic.ini", "options": {"compare_type": true}, "include_object": "",
     "flask_app": "", "alembic_runner": ""}

First, with ``alembic_ini``, it runs the target's ``env.py`` the way ``alembic check``
does — as the alembic job runs it (``flask_app``, ``alembic_runner``: see ``alembic_job.py``) — (an :class:`alembic.runtime.environment.EnvironmentContext` whose migration
function returns no step, so nothing is applied) and keeps the options ``env.py`` passed
to ``context.configure``: ``compare_type``, ``compare_server_default``,
``include_object``, ``include_name``, ``include_schemas``, ``version_table``,
``version_table_schema``. ``options`` and ``include_object`` of the request (zerodrift's
config) override them. Then it imports the metadata (``module:attribute``; a declarative
base's ``metadata`` is taken when the attribute is the base class), connects to the URL
in ``url_env`` and calls :func:`alembic.autogenerate.compare_metadata` — the comparison
``alembic check`` and ``alembic revision --autogenerate`` run — with those options. Answer, prefixed
``ZERODRIFT-RESULT ``: ``{"ok": true, "differences": [...], "tables": N, "alembic_version": "1.x"}``
where each difference is ``{"op", "kind", "object", "attribute", "models", "database"}``
(``models``/``database``: the value on that side, ``"present"``/``"absent"`` for a whole
object), or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from import_object import LoadError, load_object  # a probe beside this one (probes run as scripts from their folder)

RESULT_PREFIX = "ZERODRIFT-RESULT "


def _url(raw: str) -> str:
    if raw.startswith("postgresql://"):
        try:
            import psycopg2  # noqa: F401  (SQLAlchemy's default PostgreSQL driver)
        except ImportError:
            return "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


def _name(schema, table, default_schema):
    return f"{schema or default_schema}.{table}"


def _text(value):
    if value is None:
        return None
    arg = getattr(value, "arg", value)  # a server default: its text
    return str(getattr(arg, "text", arg))


def _describe(diff, default_schema):
    """One JSON row per autogenerate difference (Alembic's tuple format, see
    ``alembic.autogenerate.compare_metadata``): ``add_*`` exist in the models only,
    ``remove_*`` in the database only."""
    op = diff[0]
    side_models = op.startswith("add_")
    present = ("present", "absent") if side_models else ("absent", "present")
    if op in ("add_table", "remove_table"):
        t = diff[1]
        return {"op": op, "kind": "tables", "object": _name(t.schema, t.name, default_schema), "attribute": "(object)",
                "models": present[0], "database": present[1]}
    if op in ("add_column", "remove_column"):
        schema, table, column = diff[1], diff[2], diff[3]
        return {"op": op, "kind": "columns", "object": f"{_name(schema, table, default_schema)}.{column.name}",
                "attribute": "(object)", "models": present[0], "database": present[1]}
    if op in ("add_index", "remove_index"):
        ix = diff[1]
        return {"op": op, "kind": "indexes", "object": f"{_name(ix.table.schema, ix.table.name, default_schema)}/{ix.name}",
                "attribute": "(object)", "models": present[0], "database": present[1]}
    if op in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        c = diff[1]
        cols = ", ".join(getattr(c, "columns", {}).keys()) if hasattr(c, "columns") else ""
        name = c.name or f"({type(c).__name__} on {cols})"
        return {"op": op, "kind": "constraints", "object": f"{_name(c.table.schema, c.table.name, default_schema)}/{name}",
                "attribute": "(object)", "models": present[0], "database": present[1]}
    if op in ("modify_nullable", "modify_type", "modify_default", "modify_comment"):
        _, schema, table, column, _existing, db_value, model_value = diff
        attribute = {"modify_nullable": "nullable", "modify_type": "type", "modify_default": "default",
                     "modify_comment": "comment"}[op]
        shown = (lambda v: v) if attribute == "nullable" else (lambda v: None if v is None else (
            _text(v) if attribute == "default" else str(v)))
        return {"op": op, "kind": "columns", "object": f"{_name(schema, table, default_schema)}.{column}",
                "attribute": attribute, "models": shown(model_value), "database": shown(db_value)}
    if op in ("add_table_comment", "remove_table_comment"):
        t = diff[1]
        return {"op": op, "kind": "tables", "object": _name(t.schema, t.name, default_schema), "attribute": "comment",
                "models": t.comment if side_models else None, "database": None if side_models else diff[2]}
    return {"op": op, "kind": "other", "object": repr(diff[1:])[:200], "attribute": op, "models": "", "database": ""}


#: Options of ``context.configure`` that change what autogenerate compares.
ENV_OPTIONS = ("compare_type", "compare_server_default", "include_object", "include_name", "include_schemas",
               "version_table", "version_table_schema")


def env_options(request: dict) -> dict:
    """The comparison options the target's env.py gives ``context.configure`` (see the module docstring).

    env.py runs as the alembic job runs it (:class:`alembic_job.Setup`: the config of
    ``alembic_ini`` or of the Flask-Migrate app ``flask_app`` names, inside its app context,
    through the ``alembic_runner`` hook), with ``dont_mutate=True``."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    import alembic_job  # a probe beside this one

    setup = alembic_job.Setup(request)
    captured: dict = {}

    def no_steps(rev, context):
        captured.update({k: v for k, v in context.opts.items() if k in ENV_OPTIONS})
        return []

    def command(config):
        script = ScriptDirectory.from_config(config)
        with EnvironmentContext(config, script, fn=no_steps, as_sql=False, dont_mutate=True):
            script.run_env()

    try:
        setup.call(command)
    finally:
        setup.close()
    return captured


def _shown(value):
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return value


def answer_for(request: dict) -> dict:
    try:
        from alembic import __version__ as alembic_version
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
        from sqlalchemy import create_engine, pool

        metadata = load_object(request["metadata"])
        metadata = getattr(metadata, "metadata", metadata)  # a declarative base: its MetaData
        if not hasattr(metadata, "sorted_tables"):
            raise TypeError(f"{request['metadata']} is a {type(metadata).__name__}, not a SQLAlchemy MetaData "
                            "(or a declarative base)")
        opts, from_env = {}, {}
        if request.get("alembic_ini"):
            from_env = env_options(request)
            opts.update(from_env)
        opts.update(request.get("options") or {})
        if request.get("include_object"):
            opts["include_object"] = load_object(request["include_object"])
        raw = os.environ.get(request["url_env"], "")
        if not raw:
            raise RuntimeError(f"{request['url_env']} is not set")
        engine = create_engine(_url(raw), poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                default_schema = conn.dialect.default_schema_name or "public"
                diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
        finally:
            engine.dispose()
        rows = []
        for diff in diffs:
            for one in (diff if isinstance(diff, list) else [diff]):  # modify_* come grouped per column
                rows.append(_describe(one, default_schema))
        return {"ok": True, "differences": rows, "tables": len(metadata.tables), "alembic_version": alembic_version,
                "options": {k: _shown(v) for k, v in opts.items()}, "env_options": sorted(from_env)}
    except LoadError as exc:  # says at which stage, and whether the config or the target's code failed
        return exc.answer()
    except BaseException as exc:  # report any failure of the target's code
        return {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                "traceback": traceback.format_exc(limit=8)}


def main() -> int:
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(RESULT_PREFIX + json.dumps(answer_for(json.loads(line)), default=str) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
