"""The configuration reference, generated from the config models.

One renderer serves three readers: ``zerodrift config-reference [NAME]`` (works from an
installed package), ``docs/config-reference.md`` in the repository (written by
``docs/gen_config_reference.py``, which calls :func:`render`), and error messages, which
name the key that was wrong and the command that shows its section
(:func:`reference_command`).

The page walks :class:`zerodrift.config.Config` (every section, key, type, default and
description) and the ``config_model`` of each installed gate
(:func:`zerodrift.plugins.installed_gates`), nested tables such as
``[[gates.ZG-2.data_checks]]`` included. The repository's page lists the built-in gates
only; the command lists every installed gate, plugins included.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from zerodrift.errors import UsageError

__all__ = ["render", "render_section", "reference_command", "type_name", "default_text"]


def type_name(annotation: Any) -> str:
    """A short, readable name of a field's type: ``str``, ``list[str]``, ``table (str → str)``, ``any``."""
    if annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args if a is not type(None))
    if origin is list:
        inner = args[0] if args else Any
        if inspect.isclass(inner) and issubclass(inner, BaseModel):
            return "array of tables"
        return f"list[{type_name(inner)}]"
    if origin is dict:
        key, value = args if args else (str, Any)
        return f"table ({type_name(key)} → {type_name(value)})"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: Any) -> str:
    """The default of a pydantic field as a TOML literal in backticks, ``not set``, or ``required``."""
    from zerodrift.onboard.init import toml_value

    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "not set"
    try:
        return f"`{toml_value(value)}`"
    except TypeError:
        return f"`{value!r}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def _model_table(model: type[BaseModel], prefix: str) -> tuple[list[str], list[tuple[str, type[BaseModel]]]]:
    """Markdown table rows for ``model`` and the nested models found in it (name, model)."""
    lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        lines.append(f"| `{name}` | {_cell(type_name(annotation))} | {_cell(default_text(field))} | "
                     f"{_cell(field.description or '')} |")
        inner = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list and typing.get_args(annotation) else annotation
        if inspect.isclass(inner) and issubclass(inner, BaseModel):
            nested.append((f"{prefix}.{name}", inner))
    return lines, nested


def _sections() -> list[tuple[str, type[BaseModel]]]:
    """The config's ``[table]`` sections other than ``[gates]``: (name, model)."""
    from zerodrift.config import Config

    return [(name, field.annotation) for name, field in Config.model_fields.items()
            if name != "gates" and inspect.isclass(field.annotation) and issubclass(field.annotation, BaseModel)]


def _gate_part(gate_id: str, gate: type) -> list[str]:
    out = [f"### `[gates.{gate_id}]` — {gate.title}", "", _first_paragraph(gate.__doc__), ""]
    if gate.config_model is None:
        return out + ["No keys.", ""]
    lines, nested = _model_table(gate.config_model, f"gates.{gate_id}")
    out += lines + [""]
    for nested_name, model in nested:
        rows, _ = _model_table(model, nested_name)
        out += [f"#### `[[{nested_name}]]`", ""] + rows + [""]
    return out


def _finish(out: list[str]) -> str:
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def render(*, plugins: bool = False) -> str:
    """The whole reference page as Markdown (ends with one newline).

    ``plugins=False`` lists the built-in gates only (the repository's
    ``docs/config-reference.md``); ``True`` adds every installed plugin's gate."""
    from zerodrift.config import CONFIG_FILENAME, ENV_OVERRIDES, Config
    from zerodrift.plugins import installed_gates, plugin_name

    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from zerodrift.config and the built-in gates' config",
        "     models. Do not edit by hand: run `python docs/gen_config_reference.py`. -->",
        "",
        f"zerodrift reads `{CONFIG_FILENAME}`, or the `[tool.zerodrift]` table of `pyproject.toml`, found from the",
        "target folder upward. Flags beat environment variables beat the file beat defaults. Paths are relative",
        "to the folder of the config file. Unknown keys are errors that name the file and the key.",
        "`zerodrift init` writes a first, commented file; `zerodrift doctor` checks it;",
        "`zerodrift config-reference [SECTION or GATE]` prints this page, or one part of it.",
        "",
        "Environment variables that override the file:",
        "",
        "| Variable | Key |",
        "| --- | --- |",
    ]
    for env, (section, key) in ENV_OVERRIDES.items():
        out.append(f"| `{env}` | `{section}.{key}` |")
    out += ["", "`ZERODRIFT_SIGNING_KEY` (a path, or the key text itself) and `ZERODRIFT_SIGNING_KEY_PASSPHRASE` "
            "take the place of `signing.key` (`--sign-key` beats both).", ""]
    section_names = {name for name, _ in _sections()}
    top = [(name, field) for name, field in Config.model_fields.items() if name != "gates" and name not in section_names]
    if top:
        out += ["## Top-level keys", "", "In `zerodrift.toml` they come before the first `[table]` (TOML puts a key "
                "after a table header into that table); in `pyproject.toml` they go in `[tool.zerodrift]`.", "",
                "| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for name, field in top:
            out.append(f"| `{name}` | {_cell(type_name(field.annotation))} | {_cell(default_text(field))} | "
                       f"{_cell(field.description or '')} |")
        out.append("")
    for name, model in _sections():
        lines, _ = _model_table(model, name)
        out += [f"## `[{name}]`", "", _first_paragraph(model.__doc__), ""] + lines + [""]
    out += ["## `[gates.<ID>]`", "",
            _cell(Config.model_fields["gates"].description or "") + " Each gate validates its own table; a gate whose "
            "inputs are not configured is SKIPPED with the reason, never PASS. Plugins document their own keys.", ""]
    for gate_id, gate in installed_gates().items():
        if plugins or plugin_name(gate) == "built-in":
            out += _gate_part(gate_id, gate)
    return _finish(out)


def render_section(name: str) -> str:
    """One part of the reference as Markdown: a config section (``target``, ``server``,
    ``roles``, ``output``, ``signing``) or an installed gate's table (``ZG-7``, any case;
    a plugin's gate too).

    Raises UsageError naming the sections and gates there are when ``name`` is neither."""
    from zerodrift.plugins import installed_gates

    wanted = name.strip().strip("[]").removeprefix("gates.")
    for section, model in _sections():
        if section == wanted.lower():
            lines, _ = _model_table(model, section)
            return _finish([f"## `[{section}]`", "", _first_paragraph(model.__doc__), ""] + lines)
    gates = installed_gates()
    by_upper = {gid.upper(): gid for gid in gates}
    if wanted.upper() in by_upper:
        gate_id = by_upper[wanted.upper()]
        return _finish(_gate_part(gate_id, gates[gate_id]))
    raise UsageError(f"{name!r} is neither a config section ({', '.join(s for s, _ in _sections())}) nor an installed "
                     f"gate ({', '.join(gates)}): give one of those, or nothing for the whole reference")


def reference_command(key: str) -> str:
    """The command that shows the reference of the section a dotted config ``key`` belongs
    to: ``gates.ZG-7.tables`` → ``zerodrift config-reference ZG-7``, ``target.python`` →
    ``zerodrift config-reference target``, a top-level key → ``zerodrift config-reference``."""
    parts = [p for p in key.split(".") if p]
    if len(parts) >= 2 and parts[0] == "gates":
        return f"zerodrift config-reference {parts[1]}"
    if parts and parts[0] in {name for name, _ in _sections()}:
        return f"zerodrift config-reference {parts[0]}"
    return "zerodrift config-reference"
