"""Prompt sets (formats.md): JSONL rows with at least a text, or a CSV table with a ``text`` column."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import numpy as np

from interp_lab.errors import InputError
from interp_lab.io.jsonl import read_jsonl, validation_error
from interp_lab.schemas.records import PromptRow

CSV_FIELDS = ("text", "prompt_id", "criterion_score", "split")


def _read_csv(path: Path) -> Iterator[tuple[int, PromptRow]]:
    """CSV rows as prompt rows: ``text`` required; ``prompt_id``, ``criterion_score``, ``split`` optional;
    every other column becomes a label."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise InputError(path, "a CSV prompt set needs a header row with a 'text' column", line=1, field="text")
        for row in reader:
            line = reader.line_num
            data: dict = {"labels": {k: v for k, v in row.items() if k not in CSV_FIELDS and k is not None}}
            for k in CSV_FIELDS:
                if row.get(k) not in (None, ""):
                    data[k] = row[k]
            if "criterion_score" in data:
                try:
                    data["criterion_score"] = float(data["criterion_score"])
                except ValueError:
                    raise InputError(path, f"expected a number, got {data['criterion_score']!r}", line=line,
                                     field="criterion_score") from None
            try:
                yield line, msgspec.convert(data, PromptRow)
            except msgspec.ValidationError as exc:
                raise validation_error(path, line, exc) from None


def read_prompts(path: str | os.PathLike) -> list[tuple[int, PromptRow]]:
    """Read a prompt set; a conflicting duplicate prompt_id is an error, an exact duplicate is dropped."""
    from interp_lab.io.records import text_prompt_id

    p = Path(path)
    if p.suffix.lower() == ".csv" and not p.exists():
        raise InputError(p, "no such file")
    rows = _read_csv(p) if p.suffix.lower() == ".csv" else read_jsonl(path, PromptRow)
    seen: dict[str, tuple[int, PromptRow]] = {}
    out = []
    for number, row in rows:
        pid = str(row.prompt_id) if row.prompt_id is not None else text_prompt_id(row.text)
        if pid in seen:
            first_line, first = seen[pid]
            if first != row:
                raise InputError(path, f"duplicate prompt_id {pid!r} conflicts with line {first_line}",
                                 line=number, field="prompt_id")
            continue
        seen[pid] = (number, row)
        out.append((number, row))
    if not out:
        raise InputError(path, "the prompt set is empty")
    return out


def prompt_covariates(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Covariates that prompt rows carry for the ranker (evidence rule 10): ``source``, the corpus each
    prompt came from (``metadata.source``; "unknown" where a row has none), when the prompts come from
    more than one, so that a feature that only tracks the corpus is flagged ``confounded``."""
    sources = [(r.get("metadata") or {}).get("source") for r in rows]
    if len({s for s in sources if s is not None}) < 2:
        return {}
    return {"source": np.array(["unknown" if s is None else str(s) for s in sources], dtype=object)}
