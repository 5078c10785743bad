"""The command registry: every ``interp-lab`` command, declared once.

A command is an options dataclass, a function ``run(options, progress) -> result`` and a result type,
registered with ``@command``::

    @dataclass(kw_only=True)
    class VersionOptions:
        pass

    @command("version", options=VersionOptions, result=VersionResult, group="utilities",
             help="Print the version of interp-lab and of what it runs on.")
    def version(o: VersionOptions, progress: Progress) -> VersionResult:
        ...

The decorator puts the command in ``REGISTRY`` and returns the Python API's keyword function
(``version()``; ``positional`` names the options that may also be given by position), generated from the
dataclass. The command line (``cli/generate.py``) and run-config steps (``runs/``) are generated from the same
entry. ``registry()`` loads every module of ``interp_lab.api``, so a new module's commands need no other line.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
from collections.abc import Callable
from typing import Any

from interp_lab.schemas.command import (
    MISSING,
    Command,
    Progress,
    Registry,
    as_progress,
    build,
    fields_of,
)

REGISTRY = Registry()


def command(name: str, *, options: type, result: Any, group: str, help: str, step: bool = False, json: bool = False,
            log: bool | Callable[[Any], bool] = False, positional: tuple[str, ...] = (), hidden: bool = False):
    """Register ``run`` as the command ``name``; return the keyword function of the Python API."""
    def wrap(run: Callable[[Any, Progress], Any]) -> Callable[..., Any]:
        REGISTRY.add(Command(name=name, options=options, run=run, result=result, group=group, help=help, step=step,
                             json=json, log=log, hidden=hidden))
        return keyword_function(options, run, positional)
    return wrap


def keyword_function(cls: type, run: Callable[[Any, Progress], Any], positional: tuple[str, ...] = ()):
    """``f(*positional, **options, progress=None)``: builds ``cls`` from the arguments (a mapping for a group
    option, a list for a tuple) and runs ``run``. Its signature lists the options, for help() and editors."""
    names = [f.name for f, _, _ in fields_of(cls)]
    unknown = set(positional) - set(names)
    if unknown:
        raise ValueError(f"{run.__name__}: positional options {sorted(unknown)} are not fields of {cls.__name__}")

    @functools.wraps(run)
    def call(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        if len(args) > len(positional):
            raise TypeError(f"{run.__name__}() takes {len(positional)} positional arguments but {len(args)} were given")
        for key, value in zip(positional, args):
            if key in kwargs:
                raise TypeError(f"{run.__name__}() got multiple values for argument {key!r}")
            kwargs[key] = value
        return run(build(cls, kwargs), as_progress(progress))

    P = pyinspect.Parameter
    params = []
    for f, tp, _ in fields_of(cls):
        default = f.default if f.default is not MISSING else (P.empty if f.default_factory is MISSING else
                                                             f.default_factory())
        kind = P.POSITIONAL_OR_KEYWORD if f.name in positional else P.KEYWORD_ONLY
        params.append(P(f.name, kind, default=default, annotation=tp))
    params.sort(key=lambda p: p.kind)  # positional ones first, in the dataclass's order
    # a positional option before a required one is required too: ``harvest(model, dataset)``
    last_required = max((i for i, p in enumerate(params[:len(positional)]) if p.default is P.empty), default=0)
    params[:last_required] = [p.replace(default=P.empty) for p in params[:last_required]]
    params.append(P("progress", P.KEYWORD_ONLY, default=None, annotation=Any))
    call.__signature__ = pyinspect.Signature(params)  # type: ignore[attr-defined]  # read before __wrapped__
    return call


def registry() -> Registry:
    """Every command: each module of ``interp_lab.api`` is loaded, so a module that declares a command needs
    no other line to be one (exporting its function from ``interp_lab.api`` is a separate choice)."""
    import importlib
    import pkgutil

    import interp_lab.api as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return REGISTRY
