"""The ``interp-lab`` command line, generated from the command registry.

Each registered command becomes a typer command whose parameters are its options dataclass's fields (a group
field's fields are flags of the command too): the flag, its aliases and help come from the field's ``Flag``;
deprecated spellings become hidden options of the same meaning; a ``Literal`` type becomes a choice that
``--help`` lists. The callback builds the options, runs the command under a progress display and hands the
result to the renderer registered for it here (``@renders``); a command without one prints where it wrote.
A check registered with ``@before`` sees the options first (``store remove`` asks before deleting).
"""

from __future__ import annotations

import enum
import inspect as pyinspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from interp_lab.errors import UsageError
from interp_lab.schemas.command import (
    GROUPS,
    MISSING,
    NOTSET,
    Command,
    Flag,
    build,
    fields_of,
    group_of,
    members,
)

RENDERERS: dict[str, Callable[..., None]] = {}
BEFORE: dict[str, Callable[[Any], Any]] = {}
SUBAPP_HELP = {
    "models": "Models interp-lab knows by name: list, fetch into the cache, describe.",
    "store": "Query activation stores: summary, list, search, top, encode, plot, diff, tag, rename, remove.",
}


class GroupedHelp(typer.core.TyperGroup):
    """``interp-lab --help`` with the commands in sections: inspect, models and stores, SAEs, cross-model,
    utilities (each command's registry group)."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows: dict[str, list[tuple[str, Any]]] = {}
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.setdefault(getattr(cmd, "rich_help_panel", None) or "utilities", []).append((name, cmd))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(n) for group in rows.values() for n, _ in group)
        for group in sorted(rows, key=lambda g: GROUPS.index(g) if g in GROUPS else len(GROUPS)):
            with formatter.section(group[0].upper() + group[1:]):
                listed = sorted(rows[group], key=lambda row: row[0])
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in listed])


def renders(name: str):
    """Register ``fn(result, options, json_out)`` as the renderer of the command ``name``."""
    return _into(RENDERERS, name)


def shows(*names: str, table: Callable[[Any], None] | None = None, as_json: Callable[[Any], Any] | None = None
          ) -> None:
    """Register the renderer of commands whose result one function prints: ``table(result)`` (None: the result
    as JSON always); with ``--json``, ``print_json(as_json(result))`` (the result itself by default)."""
    def render_(result: Any, options: Any, json_out: bool) -> None:
        if table is None or json_out:
            print_json(as_json(result) if as_json else result)
        else:
            table(result)
    for name in names:
        RENDERERS[name] = render_


def before(name: str):
    """Register ``fn(options) -> options`` to run on the parsed options of the command ``name`` before the
    command does (and before its progress display starts): what only a command line does, such as asking
    before a deletion (``store remove``). It may return changed options or raise ``typer.Abort``."""
    return _into(BEFORE, name)


def _into(table: dict[str, Callable[..., Any]], name: str):
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        table[name] = fn
        return fn
    return wrap


def add_commands(app: typer.Typer, registry: Any) -> None:
    """Add every command of ``registry`` to ``app`` (two-word names to a sub-app of the first word)."""
    subapps: dict[str, typer.Typer] = {}
    for cmd in registry:
        *parent, word = cmd.name.split()
        target = app
        if parent:
            if parent[0] not in subapps:
                subapps[parent[0]] = typer.Typer(help=SUBAPP_HELP.get(parent[0]), no_args_is_help=True)
                app.add_typer(subapps[parent[0]], name=parent[0], rich_help_panel=cmd.group)
            target = subapps[parent[0]]
        target.command(word, help=cmd.help, hidden=cmd.hidden, rich_help_panel=cmd.group)(callback(cmd))


class _Param:
    """One command-line parameter and where its value goes in the options."""

    def __init__(self, path: tuple[str, ...], name: str, flag: Flag, of: str | None = None,
                 spelling: str | None = None, default: Any = None):
        self.path, self.name, self.flag = path, name, flag
        # a deprecated spelling: the parameter it stands for, itself, and the default it shares with it
        self.of, self.spelling, self.default = of, spelling, default

    @property
    def canonical(self) -> str:
        return self.flag.spelling(self.path[-1])


def _plan(cls: type, prefix: tuple[str, ...] = ()) -> tuple[list[pyinspect.Parameter], list[_Param]]:
    P = pyinspect.Parameter
    params: list[pyinspect.Parameter] = []
    plan: list[_Param] = []
    for f, tp, fl in fields_of(cls):
        if not fl.cli:
            continue
        group = group_of(tp)
        if group is not None and fl.cli_type is None:
            p2, pl2 = _plan(group, prefix + (f.name,))
            params += p2
            plan += pl2
            continue
        name = fl.param or f.name
        annotation = _annotation(fl.cli_type if fl.cli_type is not None else tp, f"{cls.__name__}.{f.name}")
        default = fl.cli_default if fl.cli_default is not NOTSET else f.default
        required = fl.required or (default is MISSING and f.default_factory is MISSING)
        if not required and default is MISSING:
            default = f.default_factory()
        if isinstance(default, enum.Enum):
            default = default.value
        if fl.argument:
            info = typer.Argument(... if required else default, help=fl.help or None)
        else:
            decl = [fl.spelling(f.name), *fl.aliases]
            info = typer.Option(... if required else default, *decl, help=fl.help or None, min=fl.min, max=fl.max)
        params.append(P(name, P.KEYWORD_ONLY, default=info, annotation=annotation))
        plan.append(_Param(prefix + (f.name,), name, fl))
        for i, spelling in enumerate(fl.deprecated):  # hidden, with the same default: given when it differs
            alias = f"{name}__{i}"
            params.append(P(alias, P.KEYWORD_ONLY, annotation=annotation,
                            default=typer.Option(None if required else default, spelling, hidden=True, min=fl.min,
                                                 max=fl.max)))
            plan.append(_Param(prefix + (f.name,), alias, fl, of=name, spelling=spelling,
                               default=None if required else default))
    return params, plan


class _Choice(str, enum.Enum):
    """The enum a ``Literal`` field becomes: its members are the literal's values, and ``str()`` of one is
    its value (as ``enum.StrEnum``, which Python 3.10 lacks), so whatever prints a choice prints the word
    the user types (``records``, not ``ValidateOptions_kind.records``)."""

    def __str__(self) -> str:
        return str(self.value)


def _annotation(tp: Any, where: str) -> Any:
    """The type typer parses a field of type ``tp`` with (a ``Literal`` as an enum of its values)."""
    opts = [m for m in members(tp) if m is not type(None)]
    optional = len(opts) < len(members(tp))
    if len(opts) != 1:
        raise TypeError(f"{where}: the command line cannot parse {tp} (give the field a cli_type and convert)")
    (base,) = opts
    if typing.get_origin(base) is Literal:
        values = typing.get_args(base)
        base = _Choice(where.replace(".", "_"), {str(v): str(v) for v in values})  # type: ignore[call-arg]
    elif base is not bool and base not in (str, int, float, Path) and typing.get_origin(base) is not list:
        raise TypeError(f"{where}: the command line cannot parse {tp} (give the field a cli_type and convert)")
    return Optional[base] if optional else base


def options_from(cls: type, plan: list[_Param], values: dict[str, Any]) -> Any:
    """The options instance from the parsed command line (a deprecated spelling given wins over the default)."""
    given: dict[str, Any] = {}
    for p in plan:
        if p.of is None:
            given[p.name] = values[p.name]
    for p in plan:
        v = values[p.name]
        if p.of is not None and v is not None and _plain(v) != _plain(p.default):
            given[p.of] = v
            _note(f"{p.spelling} is an old spelling of {p.canonical.split('/')[0]}")
    tree: dict[str, Any] = {}
    for p in plan:
        if p.of is not None:
            continue
        v = given[p.name]
        if isinstance(v, enum.Enum):
            v = v.value
        if p.flag.convert is not None:
            try:
                v = p.flag.convert(v)
            except ValueError as exc:
                raise UsageError(f"{p.canonical}: {exc}") from None
        node = tree
        for key in p.path[:-1]:
            node = node.setdefault(key, {})
        node[p.path[-1]] = v
    return build(cls, tree)


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v


def _note(text: str) -> None:
    from interp_lab.cli import render

    render.note(text)


def callback(cmd: Command) -> Callable[..., None]:
    """The typer callback of ``cmd``: parse, build the options, run with progress, render."""
    params, plan = _plan(cmd.options)
    P = pyinspect.Parameter
    if cmd.json:
        params.append(P("json_out", P.KEYWORD_ONLY, annotation=bool,
                        default=typer.Option(False, "--json", help="Print the result as JSON instead of a table.")))

    def run(**values: Any) -> None:
        from interp_lab.cli import render

        json_out = values.pop("json_out", False)
        options = options_from(cmd.options, plan, values)
        if cmd.name in BEFORE:
            options = BEFORE[cmd.name](options)
        with render.StageProgress(log=cmd.logs(options)) as progress:
            result = cmd.run(options, progress)
        RENDERERS.get(cmd.name, _written)(result, options, json_out)

    run.__signature__ = pyinspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__name__ = cmd.name.replace(" ", "_").replace("-", "_")
    run.__doc__ = cmd.help
    return run


def _written(result: Any, options: Any, json_out: bool) -> None:
    """The renderer of a command without one: the result as JSON with ``--json``, else where it wrote."""
    from interp_lab.cli import render

    if json_out:
        print_json(result)
        return
    paths = getattr(result, "paths", None)
    if paths:
        render.written(paths)


def print_json(obj: Any) -> None:
    """``obj`` (plain data or dataclasses; paths as strings) as indented JSON on stdout."""
    import os
    import sys

    import msgspec

    def enc(x: Any) -> Any:
        if isinstance(x, os.PathLike):
            return os.fspath(x)
        raise NotImplementedError(type(x).__name__)

    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj, enc_hook=enc), indent=2) + b"\n")
