"""The command registry's vocabulary: a command's options declared once, as the fields of a dataclass.

A command is an options dataclass (fields with types, defaults and help), one function taking an instance of
it and a progress callback, and a result type. ``api/`` declares every command with them (``api/registry.py``);
the shells are generated from that one declaration: the ``interp-lab`` command line (``cli/generate.py``),
run-config steps (``runs/``, which receives the registry and checks a step's options against the dataclass) and
the Python API's keyword functions (``interp_lab.inspect(model, criterion, top_k=5)``).

An option's field carries its command-line form in its metadata (``option()``): help, the flag and its
aliases, deprecated spellings (accepted, not shown), a range, and, when the command line writes the value as
text (``--strengths 0.5,1,2``), the converter from that text. A field whose type is an options dataclass itself
(inspect's ``hf``) is a group: its fields are flags of the command, and a mapping in a run config.

This module imports nothing of the package but ``errors`` and no third-party library: every layer may use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field
from typing import Any, Protocol, Union

META = "interp_lab.option"
NOTSET: Any = type("NotSet", (), {"__repr__": lambda self: "NOTSET"})()  # a Flag's cli_default not given


@dataclass(frozen=True)
class Flag:
    """How an option appears on the command line (the field's name and type say the rest)."""

    help: str = ""
    flag: str | None = None  # its main spelling; default ``--`` + the field name with dashes
    aliases: tuple[str, ...] = ()  # other spellings, shown in --help
    deprecated: tuple[str, ...] = ()  # older spellings (interp-lab 0.2, earlier commands): accepted, not shown
    min: float | None = None
    max: float | None = None
    argument: bool = False  # a positional argument rather than an option
    required: bool = False  # the command line requires it (the field may default to None for the API's sake)
    cli_type: Any = None  # the command line's type when it differs from the field's (text parsed by ``convert``)
    cli_default: Any = NOTSET  # the default as the command line shows it (with ``cli_type``)
    convert: Callable[[Any], Any] | None = None  # the command line's value -> the field's value
    cli: bool = True  # False: API and run configs only (a callback, a mapping no flag can write)
    param: str | None = None  # the command-line parameter's name when it is not the field's (kept from before)

    def spelling(self, name: str) -> str:
        """The main spelling of the option of field ``name``: ``flag``, else ``--`` + the name with dashes."""
        return self.flag or "--" + name.replace("_", "-")


def option(default: Any = MISSING, help: str = "", *, default_factory: Any = MISSING, **flag: Any) -> Any:
    """A field of an options dataclass: its default, its help and how the command line writes it (``Flag``)."""
    meta = {META: Flag(help=help, **flag)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> Flag:
    return f.metadata.get(META) or Flag()


def is_options(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def members(tp: Any) -> tuple[Any, ...]:
    """The members of a union type (``X | None`` -> ``(X, NoneType)``); ``(tp,)`` otherwise."""
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)


def group_of(tp: Any) -> type | None:
    """The options dataclass a field of type ``tp`` holds (``HFOptions | None`` -> ``HFOptions``), if any."""
    return next((m for m in members(tp) if is_options(m)), None)


def fields_of(cls: type) -> Iterator[tuple[dataclasses.Field, Any, Flag]]:
    """``(field, its evaluated type, its Flag)`` for every field of the options dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name], flag_of(f)


def build(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the options dataclass ``cls`` from plain values (a run config's, a keyword call's):
    a mapping given for a group field becomes its dataclass, a list given for a tuple field a tuple.
    Names that are not fields raise TypeError, as the dataclass does."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        tp = hints.get(name)
        group = group_of(tp) if tp is not None else None
        if group is not None and isinstance(value, dict):
            value = build(group, value)
        elif isinstance(value, list) and any(typing.get_origin(m) is tuple for m in members(tp)):
            value = tuple(value)
        out[name] = value
    return cls(**out)


def comma_list(text: str) -> tuple[str, ...]:
    """``"ablate, steer,"`` -> ``("ablate", "steer")``: a comma list as the command line writes it."""
    return tuple(k.strip() for k in text.split(",") if k.strip())


def comma_floats(text: str) -> tuple[float, ...]:
    """``"0.5,1,2"`` -> ``(0.5, 1.0, 2.0)``; ValueError naming the text otherwise."""
    try:
        return tuple(float(x) for x in comma_list(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a comma list of numbers") from None


def comma_ints(text: str | None) -> tuple[int, ...]:
    """``"650, 12"`` -> ``(650, 12)`` (empty or None: none): feature or latent indexes; ValueError naming the
    text otherwise."""
    try:
        values = tuple(int(x) for x in comma_list(text or ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a comma list of indexes (integers: 3,17,200)") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{text!r}: indexes are >= 0")
    return values


def str_or_none(value: Any) -> str | None:
    """A path the command line parsed, as the string an options field keeps (``""``/None: None)."""
    return str(value) if value not in (None, "") else None


class Progress(Protocol):
    """What a command hears about its work: ``progress(stage, done, total, note)`` for each stage (``total``
    None when unknown), and ``progress.say(text)`` for a line worth showing (a download, a cache hit)."""

    def __call__(self, stage: str, done: float = 0, total: float | None = None, note: str = "") -> None: ...

    def say(self, text: str) -> None: ...


class Quiet:
    """A progress that shows nothing (the API's and run configs' default), or forwards to a plain callable
    ``fn(stage, done, total)`` as the API's ``progress=`` argument has always been."""

    def __init__(self, fn: Callable[..., None] | None = None) -> None:
        self.fn = fn

    def __call__(self, stage: str, done: float = 0, total: float | None = None, note: str = "") -> None:
        if self.fn is not None:
            self.fn(stage, done, total)

    def say(self, text: str) -> None:
        say = getattr(self.fn, "say", None)
        if say is not None:
            say(text)


def as_progress(progress: Any) -> Progress:
    """``progress`` when it is one already (has ``say``), else a ``Quiet`` around it (None: silence)."""
    return progress if hasattr(progress, "say") else Quiet(progress)


@dataclass(frozen=True)
class Command:
    """One command of the registry.

    ``name`` is its command line (``inspect``, ``store top``); ``run(options, progress)`` does the work and
    returns a ``result``; ``group`` places it in ``interp-lab --help``; ``step`` makes it a run-config step
    kind (its options then need an ``out``); ``json`` gives the command line a ``--json`` flag (the renderer
    prints the result as JSON); ``log`` (a bool, or a function of the options) makes a non-terminal log get a
    line for every stage."""

    name: str
    options: type
    run: Callable[[Any, Progress], Any]
    result: Any
    group: str
    help: str
    step: bool = False
    json: bool = False
    log: bool | Callable[[Any], bool] = False
    hidden: bool = False

    def logs(self, options: Any) -> bool:
        return self.log(options) if callable(self.log) else self.log


GROUPS = ("inspect", "models and stores", "SAEs", "cross-model", "utilities")  # interp-lab --help, in order


class Registry:
    """Commands by name, in the order they were added."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(self, command: Command) -> Command:
        if command.name in self._commands:
            raise ValueError(f"command {command.name!r} registered twice")
        if command.group not in GROUPS:
            raise ValueError(f"command {command.name!r}: group {command.group!r} is not one of {GROUPS}")
        self._commands[command.name] = command
        return command

    def __getitem__(self, name: str) -> Command:
        return self._commands[name]

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def steps(self) -> dict[str, Command]:
        """The commands a run config's step may name."""
        return {c.name: c for c in self if c.step}
