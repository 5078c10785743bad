"""A run config's step options, checked before any step runs against what the command declares.

Types come from the step's API function signature (a dataclass-typed option, such as inspect's ``hf``,
is checked field by field); ranges come from the minimum and maximum the CLI declares for the option of
the same name (``--bootstrap`` min 50), so a config cannot pass what the command line refuses. Config
values are plain data (JSON, TOML, YAML), so a path is a string and a callback cannot be given at all.
"""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import msgspec

from interp_lab.errors import InputError


@dataclass(frozen=True)
class Bound:
    """An option's declared range (either end may be open) and the flag that declares it."""

    flag: str
    min: float | None = None
    max: float | None = None


def cli_bounds(command: str) -> dict[str, Bound]:
    """The ranges the ``interp-lab COMMAND`` declares, by parameter name (empty for a command with no CLI).

    The CLI is where they are declared today; one command registry is to serve both later."""
    from interp_lab.cli.main import app

    callback = next((c.callback for c in app.registered_commands if c.name == command), None)
    if callback is None:
        return {}
    bounds = {}
    for name, param in pyinspect.signature(callback).parameters.items():
        lo, hi = getattr(param.default, "min", None), getattr(param.default, "max", None)
        if lo is not None or hi is not None:
            bounds[name] = Bound(param.default.param_decls[0], lo, hi)
    return bounds


def settable(fn: Callable[..., Any]) -> dict[str, pyinspect.Parameter]:
    """``fn``'s parameters that a config can give (not callbacks), annotations evaluated."""
    params = pyinspect.signature(fn, eval_str=True).parameters
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and _plain(p.annotation) is not _UNSET}


def check_options(options: dict[str, Any], fn: Callable[..., Any], bounds: dict[str, Bound], path: Path,
                  where: str) -> None:
    """Raise ``InputError`` naming ``path`` and ``where.option`` for the first option of a wrong type or out of
    range. ``options`` are settable parameters of ``fn`` (normalize_steps refused the others)."""
    params = settable(fn)
    for key, value in options.items():
        _check(value, params[key].annotation, bounds, key, path, f"{where}.{key}".lstrip("."))


_UNSET = object()  # a type no config value can have (a callback)


def _check(value: Any, tp: Any, bounds: dict[str, Bound], name: str, path: Path, field: str) -> None:
    members = _members(tp)
    record = next((m for m in members if dataclasses.is_dataclass(m)), None)
    if record is not None and isinstance(value, dict):
        hints = typing.get_type_hints(record)
        known = [f.name for f in dataclasses.fields(record)]
        for key, v in value.items():
            if key not in known:
                raise InputError(path, f"unknown option {key!r} (known: {', '.join(known)})", field=f"{field}.{key}")
            _check(v, hints[key], bounds, key, path, f"{field}.{key}")
        return
    plain = [p for p in (_plain(m) for m in members if not dataclasses.is_dataclass(m)) if p is not _UNSET]
    if not plain:  # a dataclass alone
        raise InputError(path, f"expected a mapping of {record.__name__} options, got {type(value).__name__}",
                         field=field)
    try:
        msgspec.convert(value, Union[tuple(plain)])  # noqa: UP007
    except msgspec.ValidationError as exc:
        msg = str(exc)
        raise InputError(path, msg[0].lower() + msg[1:], field=field) from None  # "expected `int`, got `str`"
    bound = bounds.get(name)
    if bound and isinstance(value, (int, float)) and not isinstance(value, bool):
        if bound.min is not None and value < bound.min:
            raise InputError(path, f"expected at least {bound.min} (as {bound.flag}), got {value}", field=field)
        if bound.max is not None and value > bound.max:
            raise InputError(path, f"expected at most {bound.max} (as {bound.flag}), got {value}", field=field)


def _members(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)


def _plain(tp: Any) -> Any:
    """``tp`` as the plain-data type msgspec checks a config value against; ``_UNSET`` for a callback."""
    if tp is Any or tp is pyinspect.Parameter.empty or isinstance(tp, str):
        return Any
    if tp is None or tp is type(None) or tp in (str, int, float, bool):
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):  # a callback or None is a callback
        plain = [p for p in (_plain(a) for a in args if not dataclasses.is_dataclass(a)) if p is not _UNSET]
        if plain == [type(None)] and not any(dataclasses.is_dataclass(a) for a in args):
            return _UNSET
        return Union[tuple(plain)] if plain else _UNSET  # noqa: UP007
    if origin is Literal:
        return tp
    if tp is Path or origin is os.PathLike or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        return str
    if origin is tuple:
        return tuple[tuple(a if a is Ellipsis else _plain(a) for a in args)] if args else tuple
    if origin in (list, set, frozenset, Sequence) or tp in (list, Sequence):
        return list[_plain(args[0])] if args else list
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return dict[_plain(args[0]), _plain(args[1])] if args else dict
    return _UNSET
