"""Write a synthetic Alembic + PostgreSQL backend with a long history and a wide schema.

Used by ``bench/run.py`` to measure how zerodrift's cost grows with the size of a
backend (catalog snapshot, diff, whole ZG-0..ZG-2 run). The migrations are ordinary
Alembic revision files whose ``upgrade()`` runs batched DDL with ``op.execute``, as a
hand-written history would::

    python bench/generate.py OUT [--revisions 300] [--tables 2000] [--matviews 50]

What one size contains (``T`` tables over ``R`` linear revisions, ``M`` matviews):

* revision 1 creates the schema's helper function (a ``plpgsql`` trigger function);
* every revision creates about ``T/R`` tables. Each table has an identity primary key
  (so a sequence), 7 columns with defaults, a UNIQUE constraint, two CHECKs, a foreign
  key to the previous table, two secondary indexes (one partial), a comment, and
  grants to the roles ``zdbench_ro`` and ``zdbench_rw``; every 10th table also gets a
  ``BEFORE UPDATE`` trigger, every 40th a plain view;
* every 10th revision also alters a table created earlier: a new column, backfilled
  with an ``UPDATE`` and made NOT NULL, and an index on it (the kind of migration the
  existing-database path, ZG-2, is there for);
* ``M`` materialized views spread over the history, each over one table, with a
  unique index (so ``REFRESH ... CONCURRENTLY`` works) and a grant;
* ``seed.sql`` inserts rows into the tables that exist at the halfway revision, and
  ``zerodrift.toml`` points ZG-2 at that revision with a data check on a backfill.

Names contain no colon, so SQLAlchemy's ``text()`` sees no bind parameters and each
``op.execute`` sends its batch as one multi-statement string.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

RO_ROLE = "zdbench_ro"
RW_ROLE = "zdbench_rw"
ROLES = (RO_ROLE, RW_ROLE)

#: Full size (issue 7): 300 revisions, 2,000 tables, 50 materialized views.
FULL = {"revisions": 300, "tables": 2000, "matviews": 50}

ENV_PY = '''"""Alembic environment of a synthetic zerodrift benchmark backend (bench/generate.py)."""

import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def _database_url() -> str:
    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set MIGRATION_DATABASE_URL to the database to migrate")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def run_migrations_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # one transaction per revision: a single one for the whole history would need
        # a lock per created relation (thousands: past max_locks_per_transaction)
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
'''

ALEMBIC_INI = """[alembic]
script_location = migrations
prepend_sys_path = .
version_path_separator = os

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

REVISION = '''"""{doc}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op

revision = {revision!r}
down_revision = {down_repr}
branch_labels = None
depends_on = None

UPGRADE = """
{upgrade}
"""

DOWNGRADE = """
{downgrade}
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
'''

TOUCH_FUNCTION = """CREATE FUNCTION public.zdbench_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$fn$;
COMMENT ON FUNCTION public.zdbench_touch() IS 'sets updated_at on every update';"""


@dataclass
class Generated:
    """What :func:`generate` wrote: counts, the head and the halfway revision."""

    path: str
    revisions: int
    tables: int
    matviews: int
    views: int
    triggers: int
    altered: int
    head: str
    from_revision: str
    seeded_tables: int


def rev_id(i: int) -> str:
    return f"r{i:04d}"


def table_name(k: int) -> str:
    return f"t_{k:05d}"


def _table_ddl(k: int) -> tuple[list[str], list[str]]:
    """(upgrade statements, downgrade statements) of table ``k``."""
    t = table_name(k)
    parent = f",\n    parent_id bigint REFERENCES public.{table_name(k - 1)} (id) ON DELETE SET NULL" if k > 0 else ""
    up = [
        f"""CREATE TABLE public.{t} (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id integer NOT NULL,
    code text NOT NULL,
    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'active', 'done')),
    amount_cents bigint NOT NULL DEFAULT 0 CHECK (amount_cents >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(){parent},
    CONSTRAINT uq_{t}_tenant_code UNIQUE (tenant_id, code)
)""",
        f"CREATE INDEX ix_{t}_created_at ON public.{t} (created_at)",
        f"CREATE INDEX ix_{t}_open ON public.{t} (tenant_id, status) WHERE status <> 'done'",
        f"COMMENT ON TABLE public.{t} IS 'synthetic table {k}'",
        f"GRANT SELECT ON public.{t} TO {RO_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON public.{t} TO {RW_ROLE}",
    ]
    down = [f"DROP TABLE public.{t} CASCADE"]
    if k % 10 == 0:
        up.append(f"CREATE TRIGGER trg_{t}_touch BEFORE UPDATE ON public.{t} FOR EACH ROW EXECUTE FUNCTION public.zdbench_touch()")
    if k % 40 == 0:
        up.append(f"CREATE VIEW public.v_{t}_active AS SELECT id, tenant_id, code, amount_cents FROM public.{t} WHERE status = 'active'")
        up.append(f"GRANT SELECT ON public.v_{t}_active TO {RO_ROLE}")
    return up, down


def _matview_ddl(j: int, k: int) -> tuple[list[str], list[str]]:
    mv, t = f"mv_{j:03d}", table_name(k)
    up = [
        f"""CREATE MATERIALIZED VIEW public.{mv} AS
SELECT tenant_id, status, count(*) AS rows, sum(amount_cents) AS amount_cents
FROM public.{t} GROUP BY tenant_id, status""",
        f"CREATE UNIQUE INDEX ux_{mv} ON public.{mv} (tenant_id, status)",
        f"GRANT SELECT ON public.{mv} TO {RO_ROLE}",
    ]
    return up, [f"DROP MATERIALIZED VIEW public.{mv}"]


def _alter_ddl(i: int, k: int) -> tuple[list[str], list[str]]:
    t, col = table_name(k), f"region_{i:04d}"
    up = [
        f"ALTER TABLE public.{t} ADD COLUMN {col} text",
        f"UPDATE public.{t} SET {col} = 'eu-' || (tenant_id % 3) WHERE {col} IS NULL",
        f"ALTER TABLE public.{t} ALTER COLUMN {col} SET NOT NULL",
        f"CREATE INDEX ix_{t}_{col} ON public.{t} ({col})",
    ]
    return up, [f"ALTER TABLE public.{t} DROP COLUMN {col}"]


def generate(out: Path, revisions: int = FULL["revisions"], tables: int = FULL["tables"],
             matviews: int = FULL["matviews"], *, overwrite: bool = True) -> Generated:
    """Write the backend into ``out`` (replaced when it exists and ``overwrite``)."""
    if revisions < 2 or tables < revisions or matviews > tables:
        raise ValueError("need revisions >= 2, tables >= revisions and matviews <= tables")
    if out.exists():
        if not overwrite:
            raise FileExistsError(out)
        shutil.rmtree(out)
    versions = out / "migrations" / "versions"
    versions.mkdir(parents=True)
    (out / "alembic.ini").write_text(ALEMBIC_INI)
    (out / "migrations" / "env.py").write_text(ENV_PY)

    # table k is created by revision owner[k]; matview j over table mv_table[j]
    owner = [1 + (k * revisions) // tables for k in range(tables)]
    mv_table = [min(tables - 1, (j * tables) // matviews + (tables // matviews) // 2) for j in range(matviews)]
    half = revisions // 2
    altered = views = triggers = 0
    backfilled: list[tuple[str, str]] = []  # (table, column) altered after the halfway revision
    altered_early: set[str] = set()  # tables with a NOT NULL column added by the halfway revision
    for i in range(1, revisions + 1):
        up: list[str] = [TOUCH_FUNCTION] if i == 1 else []
        down: list[str] = []
        mine = [k for k in range(tables) if owner[k] == i]
        for k in mine:
            u, d = _table_ddl(k)
            up += u
            down = d + down
            views += k % 40 == 0
            triggers += k % 10 == 0
        for j, k in enumerate(mv_table):
            if owner[k] == i:
                u, d = _matview_ddl(j, k)
                up += u
                down = d + down
        if i % 10 == 0 and i > 1:
            k = (i * 7919) % max(1, min(mine) if mine else 1)  # a table from an earlier revision
            u, d = _alter_ddl(i, k)
            up += u
            down = d + down
            altered += 1
            if i > half:
                backfilled.append((table_name(k), f"region_{i:04d}"))
            else:
                altered_early.add(table_name(k))
        if i == 1:
            down.append("DROP FUNCTION public.zdbench_touch()")
        created = f"{len(mine)} tables" + (f", tables {table_name(mine[0])}..{table_name(mine[-1])}" if mine else "")
        text = REVISION.format(
            doc=f"Synthetic revision {i} of {revisions}: {created}.", revision=rev_id(i),
            down=rev_id(i - 1) if i > 1 else "<base>", down_repr=repr(rev_id(i - 1)) if i > 1 else "None",
            upgrade=";\n".join(up) + ";", downgrade=";\n".join(down) + ";",
        )
        (versions / f"{rev_id(i)}_synthetic.py").write_text(text)

    # seed: rows in the first tables that exist at the halfway revision
    seeded = [table_name(k) for k in range(tables) if owner[k] <= half and table_name(k) not in altered_early][:20]
    seed_lines = ["-- Rows an existing database holds at the halfway revision (bench/generate.py)."]
    for t in seeded:
        seed_lines.append(
            f"INSERT INTO public.{t} (tenant_id, code, status, amount_cents) "
            f"SELECT g % 5, 'code-' || g, (ARRAY['new', 'active', 'done'])[1 + g % 3], g * 100 "
            f"FROM generate_series(1, 50) AS g;"
        )
    (out / "seed.sql").write_text("\n".join(seed_lines) + "\n")

    checks = ""
    for t, col in backfilled[:3]:
        checks += (f'\n[[gates.ZG-2.data_checks]]\nname = "{t}.{col} backfilled"\n'
                   f'sql = "SELECT count(*) FROM public.{t} WHERE {col} IS NULL"\nexpect = 0\n')
    (out / "zerodrift.toml").write_text(
        "# Synthetic benchmark backend written by bench/generate.py.\n\n"
        '[target]\nalembic_ini = "alembic.ini"\npythonpath = ["."]\n'
        'migration_url_env = ["MIGRATION_DATABASE_URL"]\nruntime_url_env = ["DATABASE_URL"]\n\n'
        f"[roles]\nensure = {json.dumps(list(ROLES))}\n\n"
        f'[gates.ZG-2]\nfrom_revision = "{rev_id(half)}"\nseed_sql_file = "seed.sql"\n' + checks
    )
    return Generated(path=str(out), revisions=revisions, tables=tables, matviews=matviews, views=views,
                     triggers=triggers, altered=altered, head=rev_id(revisions), from_revision=rev_id(half),
                     seeded_tables=len(seeded))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (replaced if it exists)")
    parser.add_argument("--revisions", type=int, default=FULL["revisions"])
    parser.add_argument("--tables", type=int, default=FULL["tables"])
    parser.add_argument("--matviews", type=int, default=FULL["matviews"])
    args = parser.parse_args(argv)
    info = generate(args.out, args.revisions, args.tables, args.matviews)
    print(json.dumps(asdict(info), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
