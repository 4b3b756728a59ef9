"""Where a module's database URL comes from, and which driver its code builds: static analysis.

``zerodrift init`` writes a URL variable or a driver only when the code shows it. Two
questions are answered from the module's syntax tree (:mod:`ast`), never from words
that merely appear near each other:

* :func:`url_flow` — which environment variables flow *into the URL a connection is made
  with*: the URL argument of ``create_engine``/``create_async_engine``/``make_url``, the
  ``url=`` of Alembic's ``context.configure``, or the ``sqlalchemy.url`` option that
  ``engine_from_config`` reads (``config.set_main_option("sqlalchemy.url", …)``,
  ``section["sqlalchemy.url"] = …``). Values are followed through local names, ``or``
  chains, conditional expressions, method calls and slices on them, and functions of
  the same module returning them. A variable used as a whole URL is ``whole``; one
  used as a component (an f-string part, ``URL.create(username=…)``) is ``parts``; a
  URL read from ``alembic.ini`` is ``ini``; a value from imported code (``settings.X``)
  is ``external``. A variable that only sets a pool size or a flag is in none of them.
* :func:`built_drivers` — the ``postgresql+driver`` (or plain ``postgresql``) schemes a
  module *builds*: a ``drivername=``/``scheme=`` keyword, ``URL.create("…")``,
  ``url.set(drivername=…)``, the new text of ``.replace(old, new)``, the left side of
  ``"postgresql+x://" + rest`` or the first part of an f-string. A scheme that only
  appears in a comparison, a ``startswith`` test or an error message is not built.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+(?P<driver>\w+))?(?::|$)")
#: calls whose first argument (or ``url=``) is the URL a connection is made with
_ENGINE_CALLS = {"create_engine", "create_async_engine", "make_url"}
#: calls that assemble a URL from components
_COMPONENT_CALLS = {"create", "URL", "build", "format"}


@dataclass
class UrlFlow:
    """What flows into the URL a module connects with (see the module docstring)."""

    whole: list[str] = field(default_factory=list)  #: env variables used as the whole URL
    parts: list[str] = field(default_factory=list)  #: env variables used as URL components
    ini: bool = False  #: the URL is alembic.ini's sqlalchemy.url
    sets_ini_url: bool = False  #: the module sets sqlalchemy.url itself (so it does not read alembic.ini's)
    external: list[str] = field(default_factory=list)  #: expressions from imported code, e.g. settings.DATABASE_URL
    sinks: int = 0  #: places a URL is handed to a connection


def _env_read(node: ast.AST) -> str | None:
    """The variable name when ``node`` reads the environment (os.environ[...], .get, getenv)."""
    def is_environ(n):
        return (isinstance(n, ast.Attribute) and n.attr == "environ") or (isinstance(n, ast.Name) and n.id == "environ")

    if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        return node.slice.value
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "setdefault") and is_environ(f.value):
            return node.args[0].value
        if (isinstance(f, ast.Attribute) and f.attr == "getenv") or (isinstance(f, ast.Name) and f.id == "getenv"):
            return node.args[0].value
    return None


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_ini_url(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "sqlalchemy.url"


class _Resolver:
    def __init__(self, tree: ast.Module) -> None:
        self.assigned: dict[str, list[ast.AST]] = {}
        self.returns: dict[str, list[ast.AST]] = {}
        self.imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.assigned.setdefault(t.id, []).append(node.value)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name) and node.value:
                self.assigned.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.returns[node.name] = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imported.update((a.asname or a.name).split(".")[0] for a in node.names)

    def resolve(self, node: ast.AST, flow: UrlFlow, whole: bool = True, seen: frozenset = frozenset()) -> None:
        name = _env_read(node)
        if name:
            target = flow.whole if whole else flow.parts
            if name not in target:
                target.append(name)
            return
        if isinstance(node, ast.Name):
            if node.id in seen:
                return
            if node.id in self.assigned:
                for value in self.assigned[node.id]:
                    self.resolve(value, flow, whole, seen | {node.id})
            elif node.id in self.imported:
                flow.external.append(node.id)
            return
        if isinstance(node, ast.JoinedStr):
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    self.resolve(v.value, flow, False, seen)
            return
        if isinstance(node, ast.Call):
            called = _call_name(node)
            if called == "get_main_option" and node.args and _is_ini_url(node.args[0]):
                flow.ini = True
                return
            if isinstance(node.func, ast.Name) and node.func.id in self.returns and node.func.id not in seen:
                for value in self.returns[node.func.id]:
                    self.resolve(value, flow, whole, seen | {node.func.id})
                return
            if isinstance(node.func, ast.Name) and node.func.id in self.imported:
                flow.external.append(ast.unparse(node))  # imported code computes it: get_settings()
                return
            part = not whole or called in _COMPONENT_CALLS
            if isinstance(node.func, ast.Attribute):  # a method on a value: url.replace(...), str(x).strip()
                self.resolve(node.func.value, flow, not part and whole, seen)
            for arg in list(node.args) + [k.value for k in node.keywords]:
                self.resolve(arg, flow, not part and whole and called in ("str",), seen)
            return
        if isinstance(node, ast.Attribute):
            root = node
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and (root.id in self.imported or root.id not in self.assigned):
                flow.external.append(ast.unparse(node))
                return
            self.resolve(node.value, flow, whole, seen)
            return
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self.resolve(v, flow, whole, seen)
            return
        if isinstance(node, ast.IfExp):
            self.resolve(node.body, flow, whole, seen)
            self.resolve(node.orelse, flow, whole, seen)
            return
        if isinstance(node, ast.BinOp):  # "postgresql+psycopg://" + url[len(...):]: still the whole URL
            self.resolve(node.left, flow, whole, seen)
            self.resolve(node.right, flow, whole, seen)
            return
        if isinstance(node, ast.Subscript):
            self.resolve(node.value, flow, whole, seen)


def url_flow(source: str) -> UrlFlow:
    """What flows into the URL the module ``source`` connects with. Raises SyntaxError."""
    tree = ast.parse(source)
    resolver = _Resolver(tree)
    flow = UrlFlow()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = _call_name(node)
            url = next((k.value for k in node.keywords if k.arg == "url"), None)
            if called in _ENGINE_CALLS:
                url = url or (node.args[0] if node.args else None)
            elif called in ("set_main_option", "set_section_option"):
                args = node.args[-2:] if len(node.args) >= 2 else []
                url = args[1] if args and _is_ini_url(args[0]) else None
                flow.sets_ini_url = flow.sets_ini_url or url is not None
            elif called == "engine_from_config" and node.args:
                # the options dict: its sqlalchemy.url, unless the module set that key itself
                config = node.args[0]
                if isinstance(config, ast.Call) and _call_name(config) == "get_section":
                    flow.sinks += 1
                    flow.ini = True
                continue
            elif called != "configure":
                continue
            if url is not None:
                flow.sinks += 1
                resolver.resolve(url, flow)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Subscript) and _is_ini_url(t.slice):
                    flow.sinks += 1
                    flow.sets_ini_url = True
                    resolver.resolve(node.value, flow)
    if flow.sets_ini_url:
        flow.ini = False  # the module writes the option it later reads: alembic.ini's value is not used
    flow.external = list(dict.fromkeys(flow.external))
    return flow


def built_drivers(source: str) -> list[tuple[str, int]]:
    """``(scheme, line)`` for each PostgreSQL scheme the module builds (see the module
    docstring), e.g. ``("postgresql+psycopg", 12)``; plain ``postgresql`` when a scheme
    is built without a driver. Raises SyntaxError."""
    found: list[tuple[str, int]] = []

    def take(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _SCHEME.match(node.value)
            if m:
                found.append(("postgresql" + (f"+{m.group('driver')}" if m.group("driver") else ""), node.lineno))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for k in node.keywords:
                if k.arg in ("drivername", "scheme"):
                    take(k.value)
            called = _call_name(node)
            if called in ("create", "URL") and node.args:
                take(node.args[0])
            if called == "replace" and len(node.args) >= 2:
                take(node.args[1])
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            take(node.left)
        elif isinstance(node, ast.JoinedStr) and node.values:
            take(node.values[0])
    return found


def rewrites_plain_scheme(source: str) -> bool:
    """True when the module tests a URL for the plain ``postgresql://`` scheme
    (``url.startswith("postgresql://")``, ``.replace("postgresql://", …)``) — it turns a
    plain URL into its own driver's, so a plain one is what to hand it."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _call_name(node) in ("startswith", "replace") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in ("postgresql://", "postgres://"):
                return True
    return False
