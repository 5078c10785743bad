"""nnsight-style activation paths, ``model.layers.6.mlp.output[0]`` or ``transformer.h[6].output[0]``: parsed
by a small grammar into submodule steps, ``input`` or ``output`` and an optional index, and resolved through
the model's named submodules only. Nothing is evaluated: a path reaches no attribute, method or function,
only modules the model holds (no torch here).

Grammar (spaces around the whole path ignored)::

    path     := step ("." step | "[" INT "]")* "." ("output" | "input") ("[" INT "]")?
    step     := NAME | INT            NAME := [A-Za-z_][A-Za-z0-9_]*   INT := [0-9]+

``.output[k]`` is the k-th output of a module that returns several (a tuple, as attention modules do); a
module that returns one tensor has only ``output[0]``, which is that tensor (so a path written for a
transformers release whose blocks returned tuples reads the same tensor today). ``.input`` is the module's
first input (its first positional argument, else its first keyword one), ``.input[k]`` its k-th positional
argument.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

from interp_lab.errors import UsageError

_TOKEN = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)|(?P<punct>[.\[\]])")
FLAG = "--activation-path"


@dataclass(frozen=True)
class ActivationPath:
    """A parsed path: submodule ``steps`` from the model (names and integer indexes), ``where`` (output or
    input) and ``index`` (None: the whole output / the first input)."""

    steps: tuple[str | int, ...]
    where: Literal["output", "input"]
    index: int | None
    text: str

    @property
    def module(self) -> str:
        """The module's dotted path, e.g. ``transformer.h.6``."""
        return ".".join(str(s) for s in self.steps)

    def __str__(self) -> str:
        return self.text


def _bad(text: str, why: str, example: bool = True) -> UsageError:
    eg = " (write e.g. model.layers.6.output[0] or transformer.h[6].output[0])" if example else ""
    return UsageError(f"{FLAG} {text}: {why}{eg}")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, column) of each token; one error naming the first character that is no part of a path."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _bad(text, f"{text[pos]!r} at column {pos + 1} is not part of a module path (names, integer "
                             "indexes, dots and [k] only)")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind), pos + 1))
        pos = m.end()
    return out


def parse_activation_path(text: str) -> ActivationPath:
    """The path ``text`` parsed, or a ``UsageError`` naming the part that is wrong."""
    text = text.strip()
    if not text:
        raise _bad(text, "empty")
    toks = _tokens(text)
    steps: list[tuple[str | int, int]] = []  # (step, column)
    i = 0

    def index_at(j: int) -> int:  # toks[j] is "[": the integer inside, or an error
        if j + 2 >= len(toks) or toks[j + 1][0] != "int" or toks[j + 2][1] != "]":
            k = j + 1 if j + 1 < len(toks) and toks[j + 1][0] != "int" else j + 2
            got = toks[k][1] if k < len(toks) else "the end"
            raise _bad(text, f"'[' at column {toks[j][2]} must hold a non-negative integer and ']', not {got!r}")
        return int(toks[j + 1][1])

    while i < len(toks):
        kind, value, col = toks[i]
        if kind in ("name", "int") and (i == 0 or toks[i - 1][1] == "."):
            steps.append((int(value) if kind == "int" else value, col))
            i += 1
        elif value == "." and i > 0 and i + 1 < len(toks) and toks[i + 1][0] in ("name", "int"):
            i += 1
        elif value == "[" and steps:
            steps.append((index_at(i), col))
            i += 3
        else:
            where = "at the start" if i == 0 else f"at column {col}"
            raise _bad(text, f"{value!r} {where} is out of place")
    # the last "output" / "input" step (an optional [k] after it) is the accessor; what precedes are modules
    last = len(steps) - 1
    if last >= 1 and isinstance(steps[last][0], int) and steps[last - 1][0] in ("output", "input") \
            and text[steps[last][1] - 1] == "[":
        accessor, index, modules = steps[last - 1][0], int(steps[last][0]), steps[: last - 1]
    elif steps and steps[last][0] in ("output", "input"):
        accessor, index, modules = steps[last][0], None, steps[:last]
    else:
        raise _bad(text, "must end in .output or .input (optionally with [k])")
    if not modules:
        raise _bad(text, f"names no module before .{accessor}")
    if isinstance(modules[0][0], int):
        raise _bad(text, f"starts with an index ({modules[0][0]}); start with a module name")
    return ActivationPath(tuple(s for s, _ in modules), accessor, index, text)  # type: ignore[arg-type]


def _children(module: Any) -> dict[str, Any]:
    return dict(getattr(module, "_modules", None) or {})


def resolve(root: Any, path: ActivationPath) -> tuple[Any, ActivationPath]:
    """The module ``path`` names under ``root`` (a torch module), walking named submodules only, and the path
    as resolved. A path that does not resolve as written but does without a first step ``model`` had the
    nnsight wrapper's own name in front (``model.transformer.h.6`` is ``transformer.h.6`` on GPT-2, and
    ``model.model.layers.6`` is ``model.layers.6`` on Llama, whose backbone is called ``model``)."""
    try:
        return _walk(root, path, path.steps)
    except UsageError:
        if path.steps[0] != "model" or len(path.steps) < 2:
            raise
        first = sys.exc_info()[1]
        try:
            return _walk(root, path, path.steps[1:])
        except UsageError:
            raise first from None


def _walk(root: Any, path: ActivationPath, steps: tuple[str | int, ...]) -> tuple[Any, ActivationPath]:
    mod, walked = root, []
    for step in steps:
        kids = _children(mod)
        here = ".".join(walked) or "the model"
        if str(step) not in kids:
            if kids and all(k.isdigit() for k in kids):
                raise _bad(path.text, f"{here} has no [{step}] (it holds {len(kids)}: 0..{len(kids) - 1})", False)
            names = ", ".join(list(kids)[:12]) + (", ..." if len(kids) > 12 else "") or "no submodules"
            raise _bad(path.text, f"{here} has no submodule {str(step)!r} (it has: {names})", False)
        mod = kids[str(step)]
        walked.append(str(step))
    return mod, ActivationPath(tuple(steps), path.where, path.index, path.text)
