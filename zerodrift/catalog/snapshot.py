"""Catalog snapshot: everything a migration can change, read from ``pg_catalog``.

A :class:`CatalogSnapshot` is a canonical model of one database's schema (docs/architecture.md,
"Catalog snapshot"). It is what ZG-1 and ZG-2 compare: two databases whose snapshots are
equal have zero schema drift. Its SHA-256 is the **schema fingerprint** shown in the ledger.

Shape: ``objects[kind][identity][attribute] = JSON value``. The kinds, in their stable
order, are :data:`KINDS`. Nothing in a snapshot is an OID or a database name, so two
databases built by the same DDL have the same fingerprint whatever they are called.

Identity scheme (one string per object, unique within its kind)
----------------------------------------------------------------
Every name part is written as PostgreSQL would need it in SQL: bare when it matches
``[a-z_][a-z0-9_$]*``, otherwise in double quotes with inner quotes doubled (so a name
that contains ``.`` or ``/`` cannot be confused with a separator). Then:

==================  ===============================================  ==========================
kind                identity                                         example
==================  ===============================================  ==========================
schemas             ``schema``                                       ``public``
extensions          ``extension``                                    ``pgcrypto``
types               ``schema.type``                                  ``public.ticket_status``
tables              ``schema.table``                                 ``public.attribution_events``
columns             ``schema.relation.column``                       ``public.attribution_events.tenant_id``
constraints         ``schema.table/constraint``                      ``public.attribution_events/uq_x``
indexes             ``schema.table/index``                           ``public.attribution_events/ix_tenant``
sequences           ``schema.sequence``                              ``public.ticket_seq``
views               ``schema.view``                                  ``public.active_tenants``
matviews            ``schema.matview``                               ``public.daily_totals``
functions           ``schema.name(argument types)``                  ``public.add(integer, integer)``
triggers            ``schema.table/trigger``                         ``public.attribution_events/trg_touch``
rules               ``schema.relation/rule``                         ``public.audit/no_delete``
policies            ``schema.table/policy``                          ``public.attribution_events/tenant_isolation``
statistics          ``schema.statistics_object``                     ``public.st_tenant_day``
event_triggers      ``event_trigger``                                ``zd_ddl_guard``
default_privileges  ``role/schema/object type`` (``*``: all schemas)  ``app_owner/public/tables``
==================  ===============================================  ==========================

Columns cover tables, partitioned and foreign tables, views and materialized views (a view
column can carry a default, a comment or a grant); attributes of composite types are part
of their type. Comments, owners and privileges are attributes (``comment``, ``owner``,
``acl``) of the object they belong to, not kinds of their own.

Canonical rules
---------------
* ACLs are sorted lists of ``aclitem`` text. A NULL ACL (built-in default) is replaced by
  ``acldefault()`` for the object's type and owner, so "granted then revoked" equals "never
  granted", as pg_dump also treats it (System Catalogs: "Privileges", Functions:
  "System Information Functions", ``acldefault``).
* ``reloptions`` and column ``options`` are sorted lists of ``name=value`` strings, without
  server-internal ``pg_*`` entries (see ``_opts``).
* Definitions come from the server's own deparsers (``pg_get_indexdef``,
  ``pg_get_constraintdef``, ``pg_get_viewdef``, ``pg_get_functiondef``,
  ``pg_get_triggerdef``, ``pg_get_expr``, ``format_type``; Functions: "System Catalog
  Information Functions") run with an empty ``search_path``, so every name outside
  ``pg_catalog`` is schema-qualified whatever the caller's path was (as pg_dump does).
* Column ``position`` is the rank among non-dropped columns, not ``attnum``: dropping and
  re-adding the last column leaves no drift (System Catalogs: ``pg_attribute``,
  ``attisdropped``).
* Sequence state (``last_value``, ``is_called``) is data, not schema, and is not read.

Excluded: the schemas ``pg_catalog``, ``information_schema`` and every ``pg_*`` schema
(``pg_toast``, ``pg_temp_N``, ``pg_toast_temp_N``; users cannot create ``pg_`` schemas,
SQL Commands: CREATE SCHEMA), objects that belong to an extension (``pg_depend.deptype =
'e'``, System Catalogs: ``pg_depend``) and everything that lives in them, and all
cluster-wide or database-level objects (databases, roles, tablespaces, database comments).

Performance: one query per kind over all objects (never one per object).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from zerodrift.errors import EnvironmentProblem

#: Object kinds compared, in the stable order used for diffs and the ledger.
KINDS: tuple[str, ...] = (
    "schemas",
    "extensions",
    "types",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "sequences",
    "views",
    "matviews",
    "functions",
    "triggers",
    "rules",
    "policies",
    "statistics",
    "event_triggers",
    "default_privileges",
)

#: Identifies the JSON layout written by :meth:`CatalogSnapshot.to_canonical_json`.
FORMAT = "zerodrift-catalog/1"

#: Oldest server the queries support (``regcollation`` appeared in PostgreSQL 13).
MIN_SERVER_VERSION_NUM = 130000

_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*\Z")


def quote_name(name: str) -> str:
    """One name part of an identity: bare when plain, else double-quoted.

    ``"ticket_status"`` -> ``ticket_status``; ``"Mixed.Case"`` -> ``"Mixed.Case"``.
    Rule from SQL Syntax: "Identifiers and Key Words" (quoted identifiers, doubled quotes).
    Key words are not quoted: identities are labels, not SQL.
    """
    if _PLAIN_NAME.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _qualified(*parts: str) -> str:
    return ".".join(quote_name(p) for p in parts)


# --------------------------------------------------------------------------- snapshot


@dataclass
class CatalogSnapshot:
    """The canonical catalog model of one database.

    ``objects`` maps kind (one of :data:`KINDS`) -> object identity -> attribute -> JSON
    value (str, int, bool, None, list, dict). ``server_version`` is the server's
    ``server_version`` setting; it is recorded for the reader but is not part of the
    fingerprint.
    """

    objects: dict[str, dict[str, dict[str, Any]]]
    server_version: str = ""
    format: str = field(default=FORMAT)
    #: canonical JSON of ``objects``, computed once (a snapshot is not changed after it is taken)
    _objects_json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def _objects_canonical(self) -> bytes:
        if self._objects_json is None:
            self._objects_json = _canonical(self.objects)
        return self._objects_json

    def to_canonical_json(self) -> bytes:
        """The whole snapshot as canonical JSON bytes.

        Sorted keys, separators ``,`` and ``:``, UTF-8 (non-ASCII kept as is), a final
        ``\\n``. Equal snapshots give byte-identical output. The ``objects`` part is
        serialised once per snapshot and spliced in (keys sort as format, objects,
        server_version).
        """
        head = _canonical({"format": self.format})[:-2]  # '{"format":"…"' without '}\n'
        tail = _canonical({"server_version": self.server_version})[1:]  # '"server_version":"…"}\n'
        return head + b',"objects":' + self._objects_canonical()[:-1] + b"," + tail

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex digest of the canonical JSON of ``objects`` alone (with its final
        newline); the server version and format marker do not change it."""
        return hashlib.sha256(self._objects_canonical()).hexdigest()

    def counts(self) -> dict[str, int]:
        """Number of objects per kind, in :data:`KINDS` order (kinds not in KINDS after)."""
        kinds = list(KINDS) + sorted(k for k in self.objects if k not in KINDS)
        return {k: len(self.objects.get(k, {})) for k in kinds}

    @classmethod
    def from_json(cls, data: bytes | str) -> CatalogSnapshot:
        """Read what :meth:`to_canonical_json` wrote (any JSON spacing accepted).

        Raises ``ValueError`` when the text is not JSON, the format marker is unknown or
        ``objects`` is not a mapping of kind -> identity -> attribute mapping.
        """
        if isinstance(data, bytes | bytearray):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"catalog snapshot is not UTF-8: {exc}") from exc
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"catalog snapshot is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or "objects" not in doc:
            raise ValueError("catalog snapshot JSON must be an object with an 'objects' key")
        fmt = doc.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"unknown catalog snapshot format {fmt!r}; expected {FORMAT!r}")
        objects = doc["objects"]
        if not isinstance(objects, dict):
            raise ValueError("'objects' must map kind -> identity -> attributes")
        for kind, members in objects.items():
            if not isinstance(members, dict):
                raise ValueError(f"'objects.{kind}' must map identity -> attributes")
            for ident, attrs in members.items():
                if not isinstance(attrs, dict):
                    raise ValueError(f"'objects.{kind}.{ident}' must map attribute -> value")
        version = doc.get("server_version", "")
        if not isinstance(version, str):
            raise ValueError("'server_version' must be a string")
        return cls(objects=objects, server_version=version, format=fmt)


def _canonical(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


# --------------------------------------------------------------------------- reading


def take_snapshot(conn: psycopg.Connection) -> CatalogSnapshot:
    """Read the catalog of the database ``conn`` is connected to.

    In: an open psycopg 3 (sync) connection, autocommit or not. If it is idle, the reads run
    in their own ``REPEATABLE READ, READ ONLY`` transaction, so every query sees the same
    catalog state (SQL Commands: SET TRANSACTION); if the caller already has a transaction
    open, they run inside it under a savepoint. Either way the block is rolled back at the
    end, which also undoes the temporary ``search_path`` (empty, see module docs): the
    connection is left exactly as it was found, never in a failed transaction.

    Out: a :class:`CatalogSnapshot` with every kind of :data:`KINDS` present (empty kinds
    as ``{}``).

    Raises ``ValueError`` when the connection is in a failed transaction (roll it back
    first), :class:`zerodrift.errors.EnvironmentProblem` for a server older than
    PostgreSQL 13, and ``psycopg.Error`` for database errors.
    """
    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise ValueError("take_snapshot: the connection is in a failed transaction; roll it back first")
    if status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
        raise ValueError(f"take_snapshot: the connection is not ready (transaction status {status.name})")
    version_num = conn.info.server_version
    if version_num < MIN_SERVER_VERSION_NUM:
        raise EnvironmentProblem(
            f"catalog snapshots need PostgreSQL 13 or later; the server is version {version_num}"
        )
    started_here = status == TransactionStatus.IDLE
    with conn.transaction(force_rollback=True):
        with conn.cursor(row_factory=dict_row) as cur:
            if started_here:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SELECT set_config('search_path', '', true), set_config('jit', 'off', true), "
                        "current_setting('server_version') AS v")
            row = cur.fetchone()
            server_version = row["v"] if row else ""
            objects: dict[str, dict[str, dict[str, Any]]] = {}
            for kind in KINDS:
                sql, build = _READERS[kind]
                cur.execute(sql(version_num))
                objects[kind] = _collect(build(r) for r in cur.fetchall())
    return CatalogSnapshot(objects=objects, server_version=server_version)


def _collect(pairs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Identity -> attributes; identities that collide (possible only in odd catalogs,
    e.g. same-named constraints before PostgreSQL 13) get deterministic ``#n`` suffixes
    ordered by their canonical attributes, so nothing is silently lost."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for ident, attrs in pairs:
        groups.setdefault(ident, []).append(attrs)
    out: dict[str, dict[str, Any]] = {}
    for ident, items in groups.items():
        if len(items) == 1:
            out[ident] = items[0]
        else:
            for n, attrs in enumerate(sorted(items, key=_canonical), start=1):
                out[f"{ident}#{n}"] = attrs
    return out


def _acl(value: list[str] | None) -> list[str]:
    return sorted(value or [])


def _opts(value: list[str] | None) -> list[str]:
    """Sorted ``name=value`` options without server-internal ``pg_*`` entries.

    Option names starting with ``pg_`` are never user options (the ``pg_`` prefix is
    reserved to the system); some server builds keep per-column bookkeeping there, e.g.
    ``pg_attver=<counter>`` in ``pg_attribute.attoptions`` (seen on a Debian PostgreSQL
    15.20 build), whose value differs between two databases built by the same DDL and which
    that build's own pg_dump leaves out too.
    """
    return sorted(o for o in value or [] if not o.startswith("pg_"))


# SQL fragments shared by the queries. ``{alias}`` is the namespace alias.
def _user_ns(alias: str) -> str:
    return f"({alias}.nspname <> 'information_schema' AND {alias}.nspname NOT LIKE 'pg\\_%')"


def _not_ext(catalog: str, oid_expr: str) -> str:
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend ed WHERE ed.classid = "
        f"'{catalog}'::regclass AND ed.objid = {oid_expr} AND ed.objsubid = 0 AND ed.deptype = 'e')"
    )


def _comment(catalog: str, oid_expr: str, alias: str, subid: str = "0") -> str:
    # LATERAL ... LIMIT 1 keeps an index lookup per row: a plain LEFT JOIN gets a nested
    # loop over all of pg_description on a freshly migrated database (stale statistics),
    # quadratic in the schema size.
    return (
        f"LEFT JOIN LATERAL (SELECT description FROM pg_description WHERE objoid = {oid_expr} "
        f"AND classoid = '{catalog}'::regclass AND objsubid = {subid} LIMIT 1) {alias} ON true"
    )


def _user_rel(c: str, n: str, kinds: str) -> str:
    return f"{c}.relkind IN ({kinds}) AND {_user_ns(n)} AND {_not_ext('pg_class', c + '.oid')}"


# ---- schemas (System Catalogs: pg_namespace)
def _schemas_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner,
       coalesce(n.nspacl, acldefault('n', n.nspowner))::text[] AS acl, d.description AS comment
FROM pg_namespace n {_comment('pg_namespace', 'n.oid', 'd')}
WHERE {_user_ns('n')} AND {_not_ext('pg_namespace', 'n.oid')}
"""


def _schemas_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return quote_name(r["name"]), {"owner": r["owner"], "acl": _acl(r["acl"]), "comment": r["comment"]}


# ---- extensions (System Catalogs: pg_extension)
def _extensions_sql(v: int) -> str:
    return f"""
SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema, e.extrelocatable AS relocatable,
       pg_get_userbyid(e.extowner) AS owner, d.description AS comment
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
{_comment('pg_extension', 'e.oid', 'd')}
"""


def _extensions_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return quote_name(r["name"]), {
        "version": r["version"],
        "schema": r["schema"],
        "relocatable": r["relocatable"],
        "owner": r["owner"],
        "comment": r["comment"],
    }


# ---- types (System Catalogs: pg_type, pg_enum, pg_range; SQL Commands: CREATE TYPE, CREATE DOMAIN)
_TYPTYPE = {"e": "enum", "d": "domain", "c": "composite", "r": "range", "b": "base"}


def _types_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, t.typname AS name, t.typtype,
       pg_get_userbyid(t.typowner) AS owner, coalesce(t.typacl, acldefault('T', t.typowner))::text[] AS acl,
       d.description AS comment,
       CASE WHEN t.typtype = 'e' THEN
         (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
       END AS labels,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base_type,
       t.typnotnull AS not_null, pg_get_expr(t.typdefaultbin, 0) AS default_expr,
       CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation THEN t.typcollation::regcollation::text END
         AS domain_collation,
       CASE WHEN t.typtype = 'd' THEN
         (SELECT coalesce(jsonb_object_agg(co.conname, jsonb_build_object(
                   'definition', pg_get_constraintdef(co.oid), 'validated', co.convalidated)), '{{}}'::jsonb)
            FROM pg_constraint co WHERE co.contypid = t.oid)
       END AS constraints,
       CASE WHEN t.typtype = 'c' THEN
         (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                   'collation', CASE WHEN a.attcollation <> at.typcollation
                                     THEN a.attcollation::regcollation::text END,
                   'comment', ad.description) ORDER BY a.attnum), '[]'::jsonb)
            FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
            {_comment('pg_class', 'a.attrelid', 'ad', 'a.attnum')}
           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
       END AS attributes,
       CASE WHEN t.typtype = 'r' THEN
         (SELECT jsonb_build_object(
                   'subtype', format_type(r.rngsubtype, NULL),
                   'subtype_opclass', (SELECT quote_ident(ocn.nspname) || '.' || quote_ident(oc.opcname)
                                         FROM pg_opclass oc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
                                        WHERE oc.oid = r.rngsubopc),
                   'collation', CASE WHEN r.rngcollation <> 0 THEN r.rngcollation::regcollation::text END,
                   'canonical', CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::regprocedure::text END,
                   'subtype_diff', CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regprocedure::text END)
            FROM pg_range r WHERE r.rngtypid = t.oid)
       END AS range,
       CASE WHEN t.typtype = 'b' THEN
         jsonb_build_object('input', t.typinput::regprocedure::text, 'output', t.typoutput::regprocedure::text,
                            'length', t.typlen, 'by_value', t.typbyval, 'alignment', t.typalign,
                            'storage', t.typstorage, 'category', t.typcategory)
       END AS base
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_class tc ON tc.oid = t.typrelid
{_comment('pg_type', 't.oid', 'd')}
WHERE {_user_ns('n')} AND {_not_ext('pg_type', 't.oid')}
  AND t.typtype IN ('e', 'd', 'c', 'r', 'b')
  AND (t.typtype <> 'c' OR tc.relkind = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
"""


def _types_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = _TYPTYPE[r["typtype"]]
    attrs: dict[str, Any] = {"kind": kind, "owner": r["owner"], "acl": _acl(r["acl"]), "comment": r["comment"]}
    if kind == "enum":
        attrs["labels"] = r["labels"] or []
    elif kind == "domain":
        attrs.update(
            base_type=r["base_type"],
            not_null=r["not_null"],
            default=r["default_expr"],
            collation=r["domain_collation"],
            constraints=r["constraints"],
        )
    elif kind == "composite":
        attrs["attributes"] = r["attributes"]
    elif kind == "range":
        attrs.update(r["range"] or {})
    else:
        attrs.update(r["base"] or {})
    return _qualified(r["schema"], r["name"]), attrs


# ---- tables (System Catalogs: pg_class, pg_inherits, pg_partitioned_table)
_RELKIND = {"r": "table", "p": "partitioned table", "f": "foreign table"}
_PERSISTENCE = {"p": "permanent", "u": "unlogged", "t": "temporary"}
_REPLIDENT = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


def _tables_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS name, c.relkind, c.relpersistence, c.relreplident,
       c.relrowsecurity, c.relforcerowsecurity, c.reloptions::text[] AS reloptions,
       pg_get_userbyid(c.relowner) AS owner, coalesce(c.relacl, acldefault('r', c.relowner))::text[] AS acl,
       d.description AS comment,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       (SELECT array_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
          FROM pg_inherits i WHERE i.inhrelid = c.oid) AS parents,
       c.relispartition, ts.spcname AS tablespace, am.amname AS access_method,
       CASE WHEN c.reloftype <> 0 THEN c.reloftype::regtype::text END AS of_type,
       fs.srvname AS foreign_server, ft.ftoptions::text[] AS foreign_options
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
LEFT JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
LEFT JOIN pg_foreign_server fs ON fs.oid = ft.ftserver
{_comment('pg_class', 'c.oid', 'd')}
WHERE {_user_rel('c', 'n', "'r', 'p', 'f'")}
"""


def _tables_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    parents = r["parents"] or []
    attrs = {
        "relkind": _RELKIND[r["relkind"]],
        "persistence": _PERSISTENCE.get(r["relpersistence"], r["relpersistence"]),
        "partition_key": r["partition_key"],
        "partition_of": parents[0] if r["relispartition"] and parents else None,
        "partition_bound": r["partition_bound"],
        "inherits": [] if r["relispartition"] else parents,
        "reloptions": _opts(r["reloptions"]),
        "owner": r["owner"],
        "acl": _acl(r["acl"]),
        "comment": r["comment"],
        "rls_enabled": r["relrowsecurity"],
        "rls_forced": r["relforcerowsecurity"],
        "replica_identity": _REPLIDENT.get(r["relreplident"], r["relreplident"]),
        "tablespace": r["tablespace"],
        "access_method": r["access_method"],
        "of_type": r["of_type"],
    }
    if r["relkind"] == "f":
        attrs["foreign_server"] = r["foreign_server"]
        attrs["foreign_options"] = _opts(r["foreign_options"])
    return _qualified(r["schema"], r["name"]), attrs


# ---- columns (System Catalogs: pg_attribute, pg_attrdef)
_IDENTITY = {"a": "always", "d": "by default"}
_GENERATED = {"s": "stored", "v": "virtual"}
_STORAGE = {"p": "plain", "e": "external", "m": "main", "x": "extended"}


def _columns_sql(v: int) -> str:
    compression = "nullif(a.attcompression::text, '')" if v >= 140000 else "NULL::text"
    stattarget = "a.attstattarget::int" if v >= 170000 else "nullif(a.attstattarget::int, -1)"
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, a.attname AS name,
       row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(ad.adbin, ad.adrelid) AS default_expr, a.attidentity::text AS identity,
       a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END AS collation,
       d.description AS comment, a.attacl::text[] AS acl,
       CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END AS storage,
       {compression} AS compression, {stattarget} AS statistics_target,
       a.attoptions::text[] AS options, a.attfdwoptions::text[] AS fdw_options
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
{_comment('pg_class', 'c.oid', 'd', 'a.attnum')}
WHERE a.attnum > 0 AND NOT a.attisdropped AND {_user_rel('c', 'n', "'r', 'p', 'f', 'v', 'm'")}
"""


def _columns_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    generated = _GENERATED.get(r["generated"] or "")
    return _qualified(r["schema"], r["rel"], r["name"]), {
        "position": r["position"],
        "type": r["type"],
        "not_null": r["not_null"],
        "default": None if generated else r["default_expr"],
        "identity": _IDENTITY.get(r["identity"] or ""),
        "generated": generated,
        "generated_expression": r["default_expr"] if generated else None,
        "collation": r["collation"],
        "comment": r["comment"],
        "acl": _acl(r["acl"]),
        "storage": _STORAGE.get(r["storage"], r["storage"]) if r["storage"] else None,
        "compression": r["compression"],
        "statistics_target": r["statistics_target"],
        "options": _opts(r["options"]),
        "fdw_options": _opts(r["fdw_options"]),
    }


# ---- constraints (System Catalogs: pg_constraint)
_CONTYPE = {
    "c": "check",
    "f": "foreign key",
    "p": "primary key",
    "u": "unique",
    "t": "constraint trigger",
    "x": "exclusion",
    "n": "not null",
}


def _constraints_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, co.conname AS name, co.contype::text AS contype,
       pg_get_constraintdef(co.oid) AS definition, co.condeferrable, co.condeferred, co.convalidated,
       co.connoinherit, d.description AS comment
FROM pg_constraint co
JOIN pg_class c ON c.oid = co.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
{_comment('pg_constraint', 'co.oid', 'd')}
WHERE {_user_rel('c', 'n', "'r', 'p', 'f'")}
"""


def _constraints_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{_qualified(r['schema'], r['rel'])}/{quote_name(r['name'])}", {
        "type": _CONTYPE.get(r["contype"], r["contype"]),
        "definition": r["definition"],
        "deferrable": r["condeferrable"],
        "initially_deferred": r["condeferred"],
        "validated": r["convalidated"],
        "no_inherit": r["connoinherit"],
        "comment": r["comment"],
    }


# ---- indexes (System Catalogs: pg_index)
def _indexes_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, ic.relname AS name,
       pg_get_indexdef(i.indexrelid) AS definition, i.indisunique, i.indisprimary, i.indisexclusion,
       i.indimmediate, i.indisvalid, i.indisclustered, i.indisreplident,
       pg_get_expr(i.indpred, i.indrelid) AS predicate, (i.indexprs IS NOT NULL) AS has_expressions,
       ic.reloptions::text[] AS reloptions, ts.spcname AS tablespace, d.description AS comment,
       (SELECT min(inh.inhparent::regclass::text) FROM pg_inherits inh WHERE inh.inhrelid = ic.oid) AS parent
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
{_comment('pg_class', 'ic.oid', 'd')}
WHERE {_user_rel('c', 'n', "'r', 'p', 'm'")}
"""


def _indexes_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{_qualified(r['schema'], r['rel'])}/{quote_name(r['name'])}", {
        "definition": r["definition"],
        "unique": r["indisunique"],
        "primary": r["indisprimary"],
        "exclusion": r["indisexclusion"],
        "immediate": r["indimmediate"],
        "predicate": r["predicate"],
        "has_expressions": r["has_expressions"],
        "valid": r["indisvalid"],
        "clustered": r["indisclustered"],
        "replica_identity": r["indisreplident"],
        "reloptions": _opts(r["reloptions"]),
        "tablespace": r["tablespace"],
        "parent": r["parent"],
        "comment": r["comment"],
    }


# ---- sequences (System Catalogs: pg_sequence; SQL Commands: CREATE SEQUENCE ... OWNED BY)
def _sequences_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS name, format_type(s.seqtypid, NULL) AS type,
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, c.relpersistence,
       pg_get_userbyid(c.relowner) AS owner, coalesce(c.relacl, acldefault('s', c.relowner))::text[] AS acl,
       d.description AS comment,
       o.schema AS owned_schema, o.rel AS owned_rel, o.col AS owned_col, o.deptype AS owned_deptype
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT tn.nspname AS schema, tc.relname AS rel, ta.attname AS col, dep.deptype::text AS deptype
    FROM pg_depend dep
    JOIN pg_class tc ON tc.oid = dep.refobjid
    JOIN pg_namespace tn ON tn.oid = tc.relnamespace
    JOIN pg_attribute ta ON ta.attrelid = dep.refobjid AND ta.attnum = dep.refobjsubid
    WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.objsubid = 0
      AND dep.refclassid = 'pg_class'::regclass AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i')
    ORDER BY 1, 2, 3 LIMIT 1
) o ON true
{_comment('pg_class', 'c.oid', 'd')}
WHERE {_user_rel('c', 'n', "'S'")}
"""


def _sequences_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    owned = _qualified(r["owned_schema"], r["owned_rel"], r["owned_col"]) if r["owned_col"] else None
    return _qualified(r["schema"], r["name"]), {
        "type": r["type"],
        "start": r["seqstart"],
        "increment": r["seqincrement"],
        "min": r["seqmin"],
        "max": r["seqmax"],
        "cache": r["seqcache"],
        "cycle": r["seqcycle"],
        "persistence": _PERSISTENCE.get(r["relpersistence"], r["relpersistence"]),
        "owned_by": owned,
        "identity": r["owned_deptype"] == "i",
        "owner": r["owner"],
        "acl": _acl(r["acl"]),
        "comment": r["comment"],
    }


# ---- views and materialized views (System Catalogs: pg_class, pg_rewrite; pg_get_viewdef)
def _views_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS name, pg_get_viewdef(c.oid) AS definition,
       c.reloptions::text[] AS reloptions, pg_get_userbyid(c.relowner) AS owner,
       coalesce(c.relacl, acldefault('r', c.relowner))::text[] AS acl, d.description AS comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
{_comment('pg_class', 'c.oid', 'd')}
WHERE {_user_rel('c', 'n', "'v'")}
"""


def _views_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _qualified(r["schema"], r["name"]), {
        "definition": r["definition"],
        "reloptions": _opts(r["reloptions"]),
        "owner": r["owner"],
        "acl": _acl(r["acl"]),
        "comment": r["comment"],
    }


def _matviews_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS name, pg_get_viewdef(c.oid) AS definition,
       c.relispopulated, c.reloptions::text[] AS reloptions, pg_get_userbyid(c.relowner) AS owner,
       coalesce(c.relacl, acldefault('r', c.relowner))::text[] AS acl, d.description AS comment,
       ts.spcname AS tablespace, am.amname AS access_method
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
LEFT JOIN pg_am am ON am.oid = c.relam
{_comment('pg_class', 'c.oid', 'd')}
WHERE {_user_rel('c', 'n', "'m'")}
"""


def _matviews_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _qualified(r["schema"], r["name"]), {
        "definition": r["definition"],
        "populated": r["relispopulated"],
        "reloptions": _opts(r["reloptions"]),
        "owner": r["owner"],
        "acl": _acl(r["acl"]),
        "comment": r["comment"],
        "tablespace": r["tablespace"],
        "access_method": r["access_method"],
    }


# ---- functions and procedures (System Catalogs: pg_proc, pg_aggregate; pg_get_functiondef)
_PROKIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}


def _functions_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, p.proname AS name, oidvectortypes(p.proargtypes) AS argtypes,
       pg_get_function_identity_arguments(p.oid) AS identity_arguments, p.prokind::text AS prokind,
       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS definition,
       pg_get_function_result(p.oid) AS result,
       pg_get_userbyid(p.proowner) AS owner, coalesce(p.proacl, acldefault('f', p.proowner))::text[] AS acl,
       d.description AS comment,
       CASE WHEN p.prokind = 'a' THEN
         (SELECT jsonb_build_object(
                   'aggregate_kind', ag.aggkind, 'direct_arguments', ag.aggnumdirectargs,
                   'transition', ag.aggtransfn::regprocedure::text,
                   'final', CASE WHEN ag.aggfinalfn <> 0 THEN ag.aggfinalfn::regprocedure::text END,
                   'combine', CASE WHEN ag.aggcombinefn <> 0 THEN ag.aggcombinefn::regprocedure::text END,
                   'state_type', format_type(ag.aggtranstype, NULL), 'initial_value', ag.agginitval,
                   'sort_operator', CASE WHEN ag.aggsortop <> 0 THEN ag.aggsortop::regoperator::text END,
                   'moving_transition', CASE WHEN ag.aggmtransfn <> 0 THEN ag.aggmtransfn::regprocedure::text END,
                   'strict', p.proisstrict, 'parallel', p.proparallel)
            FROM pg_aggregate ag WHERE ag.aggfnoid = p.oid)
       END AS aggregate
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
{_comment('pg_proc', 'p.oid', 'd')}
WHERE {_user_ns('n')} AND {_not_ext('pg_proc', 'p.oid')}
"""


def _functions_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    attrs = {
        "kind": _PROKIND.get(r["prokind"], r["prokind"]),
        "identity_arguments": r["identity_arguments"],
        "result": r["result"],
        "definition": r["definition"],
        "owner": r["owner"],
        "acl": _acl(r["acl"]),
        "comment": r["comment"],
    }
    if r["aggregate"] is not None:
        attrs["aggregate"] = r["aggregate"]
    return f"{_qualified(r['schema'], r['name'])}({r['argtypes']})", attrs


# ---- triggers (System Catalogs: pg_trigger; SQL Commands: ALTER TABLE ... ENABLE/DISABLE TRIGGER)
_ENABLED = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}


def _triggers_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, tg.tgname AS name, pg_get_triggerdef(tg.oid) AS definition,
       tg.tgenabled::text AS enabled, (tg.tgparentid <> 0) AS cloned, d.description AS comment
FROM pg_trigger tg
JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
{_comment('pg_trigger', 'tg.oid', 'd')}
WHERE NOT tg.tgisinternal AND {_user_rel('c', 'n', "'r', 'p', 'f', 'v'")}
"""


def _triggers_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{_qualified(r['schema'], r['rel'])}/{quote_name(r['name'])}", {
        "definition": r["definition"],
        "enabled": _ENABLED.get(r["enabled"], r["enabled"]),
        "cloned_from_parent": r["cloned"],
        "comment": r["comment"],
    }


# ---- rules (System Catalogs: pg_rewrite; the _RETURN rule of a view is its definition)
def _rules_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, rw.rulename AS name, pg_get_ruledef(rw.oid) AS definition,
       rw.ev_enabled::text AS enabled, d.description AS comment
FROM pg_rewrite rw
JOIN pg_class c ON c.oid = rw.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
{_comment('pg_rewrite', 'rw.oid', 'd')}
WHERE rw.rulename <> '_RETURN' AND {_user_rel('c', 'n', "'r', 'p', 'f', 'v', 'm'")}
"""


def _rules_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{_qualified(r['schema'], r['rel'])}/{quote_name(r['name'])}", {
        "definition": r["definition"],
        "enabled": _ENABLED.get(r["enabled"], r["enabled"]),
        "comment": r["comment"],
    }


# ---- row-level security policies (System Catalogs: pg_policy; SQL Commands: CREATE POLICY)
_POLCMD = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def _policies_sql(v: int) -> str:
    return f"""
SELECT n.nspname AS schema, c.relname AS rel, pol.polname AS name, pol.polcmd::text AS command,
       pol.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END
               FROM unnest(pol.polroles) AS r) AS roles,
       pg_get_expr(pol.polqual, pol.polrelid) AS using_expr,
       pg_get_expr(pol.polwithcheck, pol.polrelid) AS with_check, d.description AS comment
FROM pg_policy pol
JOIN pg_class c ON c.oid = pol.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
{_comment('pg_policy', 'pol.oid', 'd')}
WHERE {_user_rel('c', 'n', "'r', 'p', 'f'")}
"""


def _policies_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"{_qualified(r['schema'], r['rel'])}/{quote_name(r['name'])}", {
        "command": _POLCMD.get(r["command"], r["command"]),
        "permissive": r["permissive"],
        "roles": sorted(r["roles"] or []),
        "using": r["using_expr"],
        "with_check": r["with_check"],
        "comment": r["comment"],
    }


# ---- extended statistics (System Catalogs: pg_statistic_ext; SQL Commands: CREATE STATISTICS)
def _statistics_sql(v: int) -> str:
    target = "s.stxstattarget::int" if v >= 170000 else "nullif(s.stxstattarget::int, -1)"
    return f"""
SELECT n.nspname AS schema, s.stxname AS name, pg_get_statisticsobjdef(s.oid) AS definition,
       {target} AS statistics_target, pg_get_userbyid(s.stxowner) AS owner, d.description AS comment
FROM pg_statistic_ext s
JOIN pg_namespace n ON n.oid = s.stxnamespace
JOIN pg_class c ON c.oid = s.stxrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
{_comment('pg_statistic_ext', 's.oid', 'd')}
WHERE {_user_ns('n')} AND {_user_rel('c', 'cn', "'r', 'p', 'f', 'm'")}
"""


def _statistics_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _qualified(r["schema"], r["name"]), {
        "definition": r["definition"],
        "statistics_target": r["statistics_target"],
        "owner": r["owner"],
        "comment": r["comment"],
    }


# ---- event triggers (System Catalogs: pg_event_trigger)
def _event_triggers_sql(v: int) -> str:
    return f"""
SELECT e.evtname AS name, e.evtevent AS event, e.evtfoid::regprocedure::text AS function,
       e.evtenabled::text AS enabled, e.evttags::text[] AS tags, pg_get_userbyid(e.evtowner) AS owner,
       d.description AS comment
FROM pg_event_trigger e
{_comment('pg_event_trigger', 'e.oid', 'd')}
WHERE {_not_ext('pg_event_trigger', 'e.oid')}
"""


def _event_triggers_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return quote_name(r["name"]), {
        "event": r["event"],
        "function": r["function"],
        "enabled": _ENABLED.get(r["enabled"], r["enabled"]),
        "tags": sorted(r["tags"] or []),
        "owner": r["owner"],
        "comment": r["comment"],
    }


# ---- default privileges (System Catalogs: pg_default_acl; SQL Commands: ALTER DEFAULT PRIVILEGES)
_DEFACL_OBJTYPE = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas", "L": "large objects"}


def _default_privileges_sql(v: int) -> str:
    return f"""
SELECT pg_get_userbyid(da.defaclrole)::text AS role, n.nspname AS schema, da.defaclobjtype::text AS objtype,
       da.defaclacl::text[] AS acl
FROM pg_default_acl da
LEFT JOIN pg_namespace n ON n.oid = da.defaclnamespace
WHERE da.defaclnamespace = 0 OR {_user_ns('n')}
"""


def _default_privileges_row(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    schema = quote_name(r["schema"]) if r["schema"] is not None else "*"
    objtype = _DEFACL_OBJTYPE.get(r["objtype"], r["objtype"])
    return f"{quote_name(r['role'])}/{schema}/{objtype}", {"acl": _acl(r["acl"])}


_Reader = tuple[Callable[[int], str], Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]]

_READERS: dict[str, _Reader] = {
    "schemas": (_schemas_sql, _schemas_row),
    "extensions": (_extensions_sql, _extensions_row),
    "types": (_types_sql, _types_row),
    "tables": (_tables_sql, _tables_row),
    "columns": (_columns_sql, _columns_row),
    "constraints": (_constraints_sql, _constraints_row),
    "indexes": (_indexes_sql, _indexes_row),
    "sequences": (_sequences_sql, _sequences_row),
    "views": (_views_sql, _views_row),
    "matviews": (_matviews_sql, _matviews_row),
    "functions": (_functions_sql, _functions_row),
    "triggers": (_triggers_sql, _triggers_row),
    "rules": (_rules_sql, _rules_row),
    "policies": (_policies_sql, _policies_row),
    "statistics": (_statistics_sql, _statistics_row),
    "event_triggers": (_event_triggers_sql, _event_triggers_row),
    "default_privileges": (_default_privileges_sql, _default_privileges_row),
}
assert tuple(_READERS) == KINDS
