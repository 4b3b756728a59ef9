"""ZG-6's proposal for ``zerodrift init``: the refresh path, its arguments and the values it returns.

From the first refresh candidate (a ``refresh*`` function that mentions an advisory
lock, :class:`zerodrift.onboard.init.RefreshCandidate`) that imports as a callable in
the target's interpreter: ``args`` (the first view of the registry when it takes one
argument), ``skipped`` and ``success`` (its constant return values that read like
"skipped/busy" and "success/ok", or False/True). The table is active only when all
three were decided; otherwise a TODO names what is missing and the table stays
commented out (the gate SKIPPED).
"""

from __future__ import annotations

import json
import re
from typing import Any

from zerodrift.onboard.hooks import InitContext


def propose(gate_id: str, init: InitContext) -> None:
    """Write the ``[gates.<gate_id>]`` proposal (see the module docstring)."""
    facts = init.facts
    if not facts.refreshers:
        init.comment("no refresh function that takes an advisory lock was found (a function with 'refresh' in its name "
                     f"that mentions an advisory lock): {gate_id} stays SKIPPED.")
        init.table(commented=True)
        init.commented_key("callable", "app.refresh:refresh_view")
        return
    usable = init.verified("callable", facts.refreshers, "callable")
    if not usable:
        return
    ref = usable[0]
    strings = [v for v in ref.returns if isinstance(v, (str, int, bool))]
    skipped = next((v for v in strings if isinstance(v, str) and re.search(r"skip|busy|running|locked", v, re.I)), None)
    success = next((v for v in strings if isinstance(v, str) and re.search(r"success|ok|refreshed|done", v, re.I)
                    and v != skipped), None)
    if skipped is None and True in strings and False in strings:
        skipped, success = False, True
    args: list[Any] | None = []
    arg_note = ""
    registries = facts.registries
    if len(ref.required) == 1 and registries and isinstance(registries[0].value, list) and registries[0].value:
        args = [registries[0].value[0]]
        arg_note = f"the first view of {registries[0].path}"
    elif ref.required:
        args = None
    decided = args is not None and skipped is not None and success is not None
    init.comment(f"refresh path found in {init.rel(ref.file)}: {ref.path}"
                 f"({', '.join(ref.required)}){' (async)' if ref.is_async else ''}, mentions an advisory lock"
                 + (f"; returns {', '.join(json.dumps(v) for v in strings)}" if strings else "") + ".")
    if len(usable) > 1:
        init.comment("other candidates: " + ", ".join(c.path for c in usable[1:]))
    if decided:
        if arg_note:
            init.todo(f"check args: guessed as {arg_note}; any view the path refreshes will do.")
        init.comment("skipped/success: the values it returns while another session holds the lock / after a refresh.")
        init.table()
        init.key("callable", ref.path)
        init.key("args", args)
        init.key("skipped", skipped)
        init.key("success", success)
        return
    missing = []
    if args is None:
        missing.append(f"args (it takes {', '.join(ref.required)})")
    if skipped is None:
        missing.append("skipped (the value it returns while another session holds the lock)")
    if success is None:
        missing.append("success (the value it returns after a refresh)")
    init.todo(f"{gate_id} is SKIPPED until you give " + "; ".join(missing) + ", then uncomment the table.")
    init.table(commented=True)
    init.commented_key("callable", ref.path)
    init.commented_key("args", args if args is not None else ["TODO"])
    init.commented_key("skipped", skipped if skipped is not None else "TODO")
    init.commented_key("success", success if success is not None else "TODO")
