"""A run config's step options, checked before any step runs against what the command declares.

Types come from the fields of the command's options dataclass (a group field, such as inspect's ``hf``, is
checked field by field); ranges from the minimum and maximum its flags declare (``--bootstrap`` min 50), so a
config cannot pass what the command line refuses. Config values are plain data (JSON, TOML, YAML), so a path
is a string.
"""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import msgspec

from interp_lab.errors import InputError
from interp_lab.schemas.command import Flag, fields_of, group_of, is_options, members


def settable(cls: type) -> dict[str, Any]:
    """The options a run-config step of a command with options dataclass ``cls`` may give: name -> type."""
    return {f.name: tp for f, tp, _ in fields_of(cls)}


def check_options(options: dict[str, Any], cls: type, path: Path, where: str) -> None:
    """Raise ``InputError`` naming ``path`` and ``where.option`` for the first option of a wrong type or out of
    the range its flag declares. ``options`` are fields of ``cls`` (normalize_steps refused the others)."""
    fields = {f.name: (tp, fl) for f, tp, fl in fields_of(cls)}
    for key, value in options.items():
        tp, fl = fields[key]
        _check(value, tp, fl, key, path, f"{where}.{key}".lstrip("."))


_UNSET = object()  # a type no config value can have (a callback)


def _check(value: Any, tp: Any, flag: Flag, name: str, path: Path, field: str) -> None:
    record = group_of(tp)
    if record is not None and isinstance(value, dict):
        fields = {f.name: (t, fl) for f, t, fl in fields_of(record)}
        for key, v in value.items():
            if key not in fields:
                raise InputError(path, f"unknown option {key!r} (known: {', '.join(fields)})", field=f"{field}.{key}")
            _check(v, *fields[key], key, path, f"{field}.{key}")
        return
    plain = [p for p in (_plain(m) for m in members(tp) if not is_options(m)) if p is not _UNSET]
    if not plain:  # a dataclass alone
        raise InputError(path, f"expected a mapping of {record.__name__} options, got {type(value).__name__}",
                         field=field)
    try:
        msgspec.convert(value, Union[tuple(plain)])  # noqa: UP007
    except msgspec.ValidationError as exc:
        msg = str(exc)
        raise InputError(path, msg[0].lower() + msg[1:], field=field) from None  # "expected `int`, got `str`"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        spelling = flag.spelling(name)
        if flag.min is not None and value < flag.min:
            raise InputError(path, f"expected at least {flag.min} (as {spelling}), got {value}", field=field)
        if flag.max is not None and value > flag.max:
            raise InputError(path, f"expected at most {flag.max} (as {spelling}), got {value}", field=field)


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
