"""Sequences owned by a column (serial, identity) and whether they are ahead of the column's data.

A ``serial`` column's sequence is tied to it by a ``pg_depend`` row of type ``a``
(auto), an identity column's by one of type ``i`` (internal) (PostgreSQL docs,
"pg_depend"). When rows were written with explicit ids and no ``setval`` followed
(a data migration, a restore, ``OVERRIDING SYSTEM VALUE``), the sequence is behind
its column and the next insert that takes the default collides with an existing row.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

#: every sequence owned by a column of an ordinary or partitioned table, with its increment
OWNED_SQL = """
SELECT c.oid::regclass::text, quote_ident(a.attname), a.attname, s.oid::regclass::text, q.seqincrement
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p')
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
   AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
 ORDER BY 1, 3
"""


@dataclass
class SequenceState:
    """One owned sequence: ``last_value``/``is_called`` as ``SELECT … FROM seq`` shows them,
    and the column's maximum (minimum for a descending sequence; None for no rows)."""

    table: str
    column: str
    sequence: str
    increment: int
    last_value: int
    is_called: bool
    extreme: int | None

    @property
    def next_value(self) -> int:
        """What ``nextval`` returns next (``last_value`` itself when not yet called)."""
        return self.last_value + self.increment if self.is_called else self.last_value

    @property
    def behind(self) -> bool:
        """True when the next value is already taken, or would be, by the column's data."""
        if self.extreme is None:
            return False
        return self.next_value <= self.extreme if self.increment > 0 else self.next_value >= self.extreme

    @property
    def bound(self) -> str:
        """``max`` (or ``min`` for a descending sequence): the aggregate compared with."""
        return "max" if self.increment > 0 else "min"


def owned_sequences(conn: psycopg.Connection) -> list[SequenceState]:
    """The state of every column-owned sequence in the connected database.

    Reads the catalog, then one statement with a row per sequence (its
    ``last_value``, ``is_called`` and the column's ``max``/``min``). Needs SELECT on the
    sequences and tables (the admin has it). Raises psycopg.Error as PostgreSQL does.
    """
    owned = conn.execute(OWNED_SQL).fetchall()
    if not owned:
        return []
    # names come from the catalog already quoted (regclass output, quote_ident)
    parts = [f"SELECT {i}, s.last_value, s.is_called, (SELECT {'max' if inc > 0 else 'min'}({col}) FROM {table}) "
             f"FROM {seq} s" for i, (table, col, _, seq, inc) in enumerate(owned)]
    values = {row[0]: row[1:] for row in conn.execute(" UNION ALL ".join(parts)).fetchall()}
    return [SequenceState(table, name, seq, int(inc), int(values[i][0]), bool(values[i][1]),
                          None if values[i][2] is None else int(values[i][2]))
            for i, (table, _, name, seq, inc) in enumerate(owned)]
