"""Prompt sets (formats.md): JSONL rows with at least a text."""

from __future__ import annotations

import os

from interp_lab.errors import InputError
from interp_lab.io.jsonl import read_jsonl
from interp_lab.schemas.records import PromptRow


def read_prompts(path: str | os.PathLike) -> list[tuple[int, PromptRow]]:
    """Read a prompt set; a conflicting duplicate prompt_id is an error, an exact duplicate is dropped."""
    from interp_lab.io.records import text_prompt_id

    seen: dict[str, tuple[int, PromptRow]] = {}
    out = []
    for number, row in read_jsonl(path, PromptRow):
        pid = str(row.prompt_id) if row.prompt_id is not None else text_prompt_id(row.text)
        if pid in seen:
            first_line, first = seen[pid]
            if first != row:
                raise InputError(path, f"duplicate prompt_id {pid!r} conflicts with line {first_line}",
                                 line=number, field="prompt_id")
            continue
        seen[pid] = (number, row)
        out.append((number, row))
    return out
