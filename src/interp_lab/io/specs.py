"""Criterion specs: ``--criterion`` is the criterion text or a path to a YAML / JSON spec (formats.md)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from interp_lab.errors import InputError
from interp_lab.io.jsonl import validation_error
from interp_lab.schemas.records import CriterionSpec

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def load_criterion(value: str) -> CriterionSpec:
    """A plain string is shorthand for a ``semantic`` criterion; an existing spec file is read and validated."""
    p = Path(value)
    if p.suffix.lower() not in SPEC_SUFFIXES or not p.is_file():
        return CriterionSpec(criterion=value)
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
