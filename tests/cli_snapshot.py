"""The ``interp-lab`` command line as data, and what may change in it without breaking a user's command line.

``describe(root)`` walks the click command that typer builds (``interp_lab.cli.main._command()``) and returns
every command path (sub-apps too: ``interp-lab store top``) with, for each, its options (every spelling, flag
or value, type of one value and choices, nargs / multiple, range, required, default, hidden) and its
positional arguments in order. A command built with plain click describes as its typer twin, so the
snapshot still applies if the registry generates the CLI with click.
``tests/data/cli_snapshot.json`` is that description of the CLI as committed; ``test_cli_snapshot.py`` checks
the live CLI against it with ``breaking_changes`` (what would stop a command line that parses today from
parsing, or from meaning the same) and ``differences`` (anything else).

    python tests/cli_snapshot.py                          # what differs from the snapshot (exit 1 if anything)
    python tests/cli_snapshot.py --write                  # rewrite it (refused while a change is breaking)
    python tests/cli_snapshot.py --write --allow-breaking # rewrite it anyway: a deliberate break, said in the commit

(with ``PYTHONPATH=src`` in a checkout that is not the installed one).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

SNAPSHOT = Path(__file__).resolve().parent / "data" / "cli_snapshot.json"
SCHEMA = "interp-lab.cli-snapshot.v1"
ROOT_NAME = "interp-lab"
# type changes that keep every value parsing as before: a path and a string read the same text; a string or
# path may become a choice (issue 22 item 5's enums; the values outside the choices were refused by the API
# before, with exit 2 as now); a choice may gain choices
INTERCHANGEABLE = {"str", "Path"}


def live_command():
    """The click command of today's CLI (built once by ``interp_lab.cli.main``)."""
    from interp_lab.cli.main import _command

    return _command()


# ------------------------------------------------------------------------------------------------ describe


def describe(root: Any) -> dict[str, Any]:
    """The description of the click command ``root`` and every command under it (sorted, JSON-ready)."""
    return {"schema": SCHEMA, "commands": {path: _command(cmd) for path, cmd in _walk(root, ROOT_NAME)}}


def _walk(cmd: Any, path: str):
    yield path, cmd
    if hasattr(cmd, "list_commands"):  # a group: its commands as click lists them (lazy ones too)
        ctx = cmd.context_class(cmd, info_name=path.rsplit(" ", 1)[-1])
        for name in sorted(cmd.list_commands(ctx)):
            yield from _walk(cmd.get_command(ctx, name), f"{path} {name}")


def _command(cmd: Any) -> dict[str, Any]:
    options = [_option(p) for p in cmd.params if p.param_type_name == "option"]
    arguments = [_argument(p) for p in cmd.params if p.param_type_name == "argument"]
    return {"group": hasattr(cmd, "list_commands"), "hidden": bool(getattr(cmd, "hidden", False)),
            "options": sorted(options, key=lambda o: (o["opts"] + o["secondary_opts"])[0]),
            "arguments": arguments}  # in positional order


def _value_type(p: Any) -> dict[str, Any]:
    type_, choices = _type_of(p)
    bounds = p if hasattr(p, "type_descriptor") else p.type  # typer keeps a range on the parameter, click on its type
    return {"type": type_, "choices": None if choices is None else [_jsonable(c) for c in choices],
            "nargs": p.nargs, "multiple": bool(p.multiple),
            "min": getattr(bounds, "min", None), "max": getattr(bounds, "max", None),
            "required": bool(p.required), "default": _jsonable(p.default), "hidden": bool(getattr(p, "hidden", False))}


# click's type names as typer's (a CLI generated with plain click describes as the same one with typer)
CLICK_TYPES = {"text": "str", "integer": "int", "integer range": "int", "float": "float", "float range": "float",
               "boolean": "bool", "path": "Path", "file": "File", "uuid": "UUID", "datetime": "datetime"}


def _type_of(p: Any) -> tuple[str, Any]:
    """(the type of ONE value, its choices or None): ``nargs`` and ``multiple`` say how many values there are."""
    desc = getattr(p, "type_descriptor", None)  # typer 0.29 (typer._click has no ParamType): the annotation
    if desc is None:  # plain click
        choices = getattr(p.type, "choices", None)
        return ("choice", list(choices)) if choices is not None else (CLICK_TYPES.get(p.type.name, p.type.name), None)
    if desc.choices is not None:
        return "choice", list(desc.choices)
    annotation = desc.annotation
    if desc.is_list:
        (annotation,) = get_args(annotation)
    elif desc.is_tuple:
        return ",".join(p._bare_type(a) for a in get_args(annotation)), None
    return p._bare_type(annotation), None


def _option(p: Any) -> dict[str, Any]:
    return {"name": p.name, "opts": list(p.opts), "secondary_opts": list(p.secondary_opts),
            "flag": bool(p.is_flag), "count": bool(p.count), **_value_type(p)}


def _argument(p: Any) -> dict[str, Any]:
    return {"name": p.name, **_value_type(p)}


def _jsonable(value: Any) -> Any:
    if type(value).__name__ == "Sentinel":  # plain click's UNSET default
        return None
    if isinstance(value, enum.Enum):  # before str: a choice's member is a str too (the generated enums mix it in)
        return _jsonable(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise TypeError(f"a CLI default of type {type(value).__name__} ({value!r}): teach cli_snapshot._jsonable it")


def dumps(description: dict[str, Any]) -> str:
    """The snapshot's text: JSON, commands sorted by path, one line per option or argument (a review diff
    shows the flag that changed), fields in a fixed order."""
    def one(x: Any) -> str:
        return json.dumps(x, ensure_ascii=False)

    lines = ["{", f' "schema": {one(description["schema"])},', ' "commands": {']
    commands = sorted(description["commands"].items())
    for i, (path, c) in enumerate(commands):
        lines.append(f"  {one(path)}: {{")
        lines.append(f'   "group": {one(c["group"])}, "hidden": {one(c["hidden"])},')
        for key, end in (("arguments", ","), ("options", "")):
            items = [f"    {one(x)}" for x in c[key]]
            lines += [f'   "{key}": [', ",\n".join(items), f"   ]{end}"] if items else [f'   "{key}": []{end}']
        lines.append("  }" + ("," if i < len(commands) - 1 else ""))
    return "\n".join(lines + [" }", "}"]) + "\n"


def load(path: Path = SNAPSHOT) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- compatibility


def spellings(option: dict[str, Any]) -> list[tuple[str, bool]]:
    """``(spelling, sets)`` of an option: ``sets`` False for a boolean flag's secondary (off) spelling."""
    return [(s, True) for s in option["opts"]] + [(s, False) for s in option["secondary_opts"]]


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` would stop a command line that parses under ``old`` from parsing, or change what it means.

    Every command path of ``old`` must exist in ``new`` (hidden allowed, a group stays a group); every spelling
    of every option must be accepted by the same command (as an option of its own or an alias of another,
    hidden allowed) with the same role (a flag's ``--x`` / ``--no-x``), flag-ness, count, nargs, multiple and
    default, a type that reads the same text (``INTERCHANGEABLE``; a string may become a choice, a choice may
    gain choices), a range no narrower, and not newly required; no new option or argument is required;
    positional arguments keep their order, nargs, types and defaults. Additions and hiding are not breaking."""
    problems: list[str] = []
    for path, oc in old["commands"].items():
        nc = new["commands"].get(path)
        if nc is None:
            problems.append(f"{path}: the command is gone")
            continue
        if oc["group"] != nc["group"]:
            problems.append(f"{path}: was {'a group' if oc['group'] else 'a command'}, is not any more")
        live = {s: (o, sets) for o in nc["options"] for s, sets in spellings(o)}
        known = set()
        for o in oc["options"]:
            for s, sets in spellings(o):
                known.add(s)
                if s not in live:
                    problems.append(f"{path} {s}: no longer accepted")
                    continue
                n, nsets = live[s]
                if nsets != sets:
                    problems.append(f"{path} {s}: now sets the flag {'on' if nsets else 'off'} (it set it "
                                    f"{'on' if sets else 'off'})")
                problems += [f"{path} {s}: {p}" for p in _value_changes(o, n)]
        for n in nc["options"]:
            if n["required"] and not {s for s, _ in spellings(n)} & known:
                problems.append(f"{path} {(n['opts'] + n['secondary_opts'])[0]}: a new option that is required")
        for i, oa in enumerate(oc["arguments"]):
            if i >= len(nc["arguments"]):
                problems.append(f"{path} argument {i + 1} ({oa['name']}): gone")
                continue
            problems += [f"{path} argument {i + 1} ({oa['name']}): {p}" for p in _value_changes(oa, nc["arguments"][i])]
        for i, na in enumerate(nc["arguments"][len(oc["arguments"]):], start=len(oc["arguments"])):
            if na["required"]:
                problems.append(f"{path} argument {i + 1} ({na['name']}): a new argument that is required")
    return problems


def _value_changes(o: dict[str, Any], n: dict[str, Any]) -> list[str]:
    out = []
    for key in ("flag", "count", "nargs", "multiple"):
        if key in o and o[key] != n[key]:
            out.append(f"{key} was {o[key]!r}, is {n[key]!r}")
    if not _same_text(o, n):
        out.append(f"type was {_type_str(o)}, is {_type_str(n)}")
    if n["min"] is not None and (o["min"] is None or n["min"] > o["min"]):
        out.append(f"minimum was {o['min']}, is {n['min']}")
    if n["max"] is not None and (o["max"] is None or n["max"] < o["max"]):
        out.append(f"maximum was {o['max']}, is {n['max']}")
    if n["required"] and not o["required"]:
        out.append("now required")
    if o["default"] != n["default"] and not o["required"]:
        out.append(f"default was {o['default']!r}, is {n['default']!r}")
    return out


def _same_text(o: dict[str, Any], n: dict[str, Any]) -> bool:
    """Does every value ``o`` parses still parse under ``n``, as the same text?"""
    if o["type"] == "choice":
        return n["type"] == "choice" and set(o["choices"]) <= set(n["choices"])
    if n["type"] == "choice":
        return o["type"] in INTERCHANGEABLE
    return o["type"] == n["type"] or {o["type"], n["type"]} <= INTERCHANGEABLE


def _type_str(d: dict[str, Any]) -> str:
    return d["type"] if d["choices"] is None else f"choice of {', '.join(map(str, d['choices']))}"


# ----------------------------------------------------------------------------------------------- parsing


def unparsed_spellings(root: Any, old: dict[str, Any]) -> list[str]:
    """Parse, with the live click command ``root``, one command line per spelling of every option of ``old``.

    Each line is the command path, the spelling (with a value the live option reads: a choice of it, a number
    in its range, ``x``), and a value for every option and argument the live command requires. The line
    must parse (click's own parser and type conversion, no command run) and the value must land where the
    spelling sends it (a flag's off spelling: False). Returns what failed, one line each."""
    import typer

    new = describe(root)
    problems = []
    for path, oc in old["commands"].items():
        nc = new["commands"].get(path)
        if nc is None:
            continue  # breaking_changes says so
        live = {s: (o, sets) for o in nc["options"] for s, sets in spellings(o)}
        for o in oc["options"]:
            for s, sets in spellings(o):
                if s not in live:
                    continue
                n, _ = live[s]
                given, expected = ([], sets) if n["flag"] else _sample(n)
                argv = [s, *given] + _required(nc, but=n["name"])
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # what an eager option prints (--version)
                        ctx = _context(root, path, list(argv))  # click's parser consumes the list
                except typer.Exit:  # an eager option that exits once read (--version)
                    continue
                except Exception as exc:  # a usage error (typer._click.exceptions.UsageError) or worse
                    problems.append(f"{path} {' '.join(argv)}: {type(exc).__name__}: {exc}")
                    continue
                got = _jsonable(ctx.params.get(n["name"]))
                if got != expected:
                    problems.append(f"{path} {' '.join(argv)}: {n['name']} = {got!r}, expected {expected!r}")
    return problems


def _sample(p: dict[str, Any]) -> tuple[list[str], Any]:
    """Command-line words for one value of ``p`` and the value the command should receive (JSON form)."""
    if p["choices"]:
        word: Any = p["choices"][0]
    elif p["type"] in ("int", "float"):
        cast = int if p["type"] == "int" else float
        word = cast(p["min"] if p["min"] is not None else min(3, p["max"]) if p["max"] is not None else 3)
    else:
        word = "x"
    words = [str(word)] * max(p["nargs"], 1)
    value = word if p["nargs"] == 1 else [word] * max(p["nargs"], 1)
    return words, [value] if p["multiple"] else value


def _required(c: dict[str, Any], but: str) -> list[str]:
    argv = []
    for o in c["options"]:
        if o["required"] and o["name"] != but:
            argv += [o["opts"][0], *_sample(o)[0]]
    for a in c["arguments"]:
        if a["required"]:
            argv += _sample(a)[0]
    return argv


def _context(root: Any, path: str, argv: list[str]) -> Any:
    """The click context of ``argv`` parsed by the command at ``path`` (its groups resolved, nothing run)."""
    parts = path.split()[1:]
    if not parts:
        return root.make_context(ROOT_NAME, argv)
    cmd, ctx = root, root.make_context(ROOT_NAME, [], resilient_parsing=True)
    for i, part in enumerate(parts):
        cmd = cmd.get_command(ctx, part)
        last = i == len(parts) - 1
        ctx = cmd.make_context(part, argv if last else [], parent=ctx, resilient_parsing=not last)
    return ctx


# --------------------------------------------------------------------------------------------- differences


def flatten(description: dict[str, Any]) -> dict[str, Any]:
    """``{"interp-lab inspect --top-k": {...}, "interp-lab store top argument 1": {...}, "interp-lab run": {...}}``."""
    flat = {}
    for path, c in description["commands"].items():
        flat[path] = {k: v for k, v in c.items() if k not in ("options", "arguments")}
        for o in c["options"]:
            flat[f"{path} {(o['opts'] + o['secondary_opts'])[0]}"] = o
        for i, a in enumerate(c["arguments"]):
            flat[f"{path} argument {i + 1}"] = a
    return flat


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every difference, one line each: ``+`` added, ``-`` removed, ``~`` changed (with the fields)."""
    a, b = flatten(old), flatten(new)
    lines = [f"- {k}" for k in sorted(a.keys() - b.keys())] + [f"+ {k}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        changed = [f"{f}: {a[k].get(f)!r} -> {b[k].get(f)!r}" for f in sorted(a[k].keys() | b[k].keys())
                   if a[k].get(f) != b[k].get(f)]
        if changed:
            lines.append(f"~ {k}: {'; '.join(changed)}")
    return lines


# ------------------------------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python tests/cli_snapshot.py")
    ap.add_argument("--write", action="store_true", help="rewrite the snapshot from the live CLI")
    ap.add_argument("--allow-breaking", action="store_true", help="with --write: even when a change is breaking")
    args = ap.parse_args(argv)
    new = describe(live_command())
    old = load() if SNAPSHOT.exists() else {"schema": SCHEMA, "commands": {}}
    breaking = breaking_changes(old, new) + unparsed_spellings(live_command(), old)
    for line in differences(old, new):
        print(line)
    for line in breaking:
        print(f"BREAKING: {line}")
    if not args.write:
        return 1 if dumps(old) != dumps(new) else 0
    if breaking and not args.allow_breaking:
        print(f"not written: {len(breaking)} breaking change(s); add a hidden alias, or --allow-breaking",
              file=sys.stderr)
        return 1
    from interp_lab.io.atomic import write_bytes_atomic

    write_bytes_atomic(SNAPSHOT, dumps(new).encode("utf-8"))
    print(f"wrote {SNAPSHOT} ({len(new['commands'])} commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
