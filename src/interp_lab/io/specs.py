"""Criterion specs: ``--criterion`` is the criterion text or a path to a YAML / JSON spec (formats.md)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from interp_lab.errors import InputError
from interp_lab.io.jsonl import validation_error
from interp_lab.schemas.records import CriterionSpec

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
CONFIG_SUFFIXES = (*SPEC_SUFFIXES, ".toml")  # names that are files, not criterion text, even when mistyped


def criterion_file(value: str | os.PathLike) -> Path | None:
    """The spec file a ``--criterion`` value names, or None when the value is the criterion's text.

    The one place that decides. A value is a path when it ends in .yaml, .yml, .json or .toml, or has a
    path separator and no whitespace (``specs/units``); anything else is text, however long. A path must
    name an existing YAML or JSON file: a missing one, a directory or another kind of file is an error,
    never taken for the criterion's text."""
    text = os.fspath(value)
    if "\n" in text:
        return None
    p = Path(text)
    pathlike = isinstance(value, os.PathLike) or p.suffix.lower() in CONFIG_SUFFIXES or (
        ("/" in text or os.sep in text) and not any(c.isspace() for c in text))
    if not pathlike:
        return None
    try:
        mode = p.stat().st_mode
    except (OSError, ValueError):  # missing, a name too long, a NUL byte
        raise InputError(text, "criterion spec file not found (a criterion is its text, or a .yaml / .json spec "
                               "file)") from None
    if stat.S_ISDIR(mode):
        raise InputError(text, "a directory, not a criterion spec file")
    if p.suffix.lower() not in SPEC_SUFFIXES:
        raise InputError(text, "a criterion spec file is YAML (.yaml, .yml) or JSON (.json)")
    return p


def load_criterion(value: str | os.PathLike) -> CriterionSpec:
    """Criterion text is shorthand for a ``semantic`` criterion; a spec file is read and validated."""
    p = criterion_file(value)
    if p is None:
        return CriterionSpec(criterion=os.fspath(value))
    raw = p.read_bytes()
    try:
        if p.suffix.lower() == ".json":
            data = msgspec.json.decode(raw)
        else:
            import yaml

            data = yaml.safe_load(raw)
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(p, f"malformed spec ({str(exc).splitlines()[0]})",
                         line=None if mark is None else mark.line + 1) from None
    if not isinstance(data, dict):
        raise InputError(p, "a criterion spec must be a mapping with at least 'criterion'")
    try:
        return msgspec.convert(data, CriterionSpec)
    except msgspec.ValidationError as exc:
        err = validation_error(p, 0, exc)
        err.line = None
        raise err from None
