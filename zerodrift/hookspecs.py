"""pluggy hook specifications for gate plugins.

A plugin is a module registered under the ``zerodrift`` entry-point group (see
``[project.entry-points.zerodrift]`` in pyproject.toml) that implements::

    from zerodrift.hookspecs import hookimpl

    @hookimpl
    def zerodrift_gates():
        return [MyGate]

Built-in gates use exactly this mechanism (like pytest's and datasette's own
default plugins).
"""

from __future__ import annotations

import pluggy

PROJECT = "zerodrift"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zerodrift_gates() -> list[type]:
    """Return the gate classes (subclasses of zerodrift.gates.base.Gate) this plugin provides."""
