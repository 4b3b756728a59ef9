"""Gate discovery through pluggy and the ``zerodrift`` entry-point group.

Built-in gates are registered in zerodrift's own pyproject.toml under
``[project.entry-points.zerodrift]`` — the same way a third-party package adds one.
"""

from __future__ import annotations

from functools import lru_cache

import pluggy

from zerodrift import hookspecs
from zerodrift.errors import UsageError
from zerodrift.gates.base import Gate

ENTRY_POINT_GROUP = "zerodrift"


def plugin_manager(extra_plugins: tuple = ()) -> pluggy.PluginManager:
    """A plugin manager with every installed gate plugin loaded (plus ``extra_plugins``)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    return pm


@lru_cache(maxsize=1)
def installed_gates() -> dict[str, type[Gate]]:
    """Gate classes by id, sorted by id. Raises UsageError on a duplicate id."""
    return gates_from(plugin_manager())


def gates_from(pm: pluggy.PluginManager) -> dict[str, type[Gate]]:
    """Collect gate classes from a plugin manager; ids must be unique."""
    found: dict[str, type[Gate]] = {}
    for batch in pm.hook.zerodrift_gates():
        for gate in batch or []:
            if not (isinstance(gate, type) and issubclass(gate, Gate)):
                raise UsageError(f"gate plugin returned {gate!r}, which is not a subclass of zerodrift.gates.base.Gate")
            if gate.id in found and found[gate.id] is not gate:
                raise UsageError(f"two plugins provide gate {gate.id}: {found[gate.id].__module__} and {gate.__module__}")
            found[gate.id] = gate
    return dict(sorted(found.items(), key=lambda kv: _gate_sort_key(kv[0])))


def _gate_sort_key(gate_id: str):
    prefix, _, number = gate_id.partition("-")
    return (prefix, int(number) if number.isdigit() else 10**6, gate_id)


def plugin_name(gate: type[Gate]) -> str:
    """Where a gate comes from, for listings."""
    module = gate.__module__
    return "built-in" if module.startswith("zerodrift.gates.") else module.split(".")[0]
