"""``compile_criterion()``: a criterion (a spec file or its text) compiled into a scored, split prompt set,
written as prompt JSONL (criteria/compile.py does the work)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.schemas.command import Progress, option

if TYPE_CHECKING:
    from interp_lab.criteria.compile import Compiled


@dataclass(kw_only=True)
class CompileCriterionOptions:
    """The options of ``compile-criterion``."""

    criterion: str = option(help="A criterion spec (YAML / JSON) or the criterion text.")
    model: str = option(defaults.MODEL, "The model that scores next_token criteria.")
    prompts: str | None = option(None, "Prompt set (overrides the spec's).")
    dataset: str | None = option(None, "Corpus of a semantic criterion (default lee+enwiki).")
    out: Path = option(help="Scored, split prompt set (JSONL).")


@dataclass
class CompileCriterionResult:
    """A compiled criterion and where its prompt set went."""

    compiled: Compiled
    """The criterion's spec, rows (prompt_id, text, criterion_score, split, labels, metadata),
    score_kind, source (where the prompts came from), counts per split and info (how they were chosen and
    split)."""
    prompts: int
    """Prompts written."""
    paths: dict[str, Path] = field(default_factory=dict)
    """``prompts``: the prompt set (JSONL)."""


@command("compile-criterion", options=CompileCriterionOptions, result=CompileCriterionResult, group="inspect", log=True,
         positional=("criterion",),
         help="Compile a criterion into a scored, split prompt set (labelled, next_token, semantic, contrast).")
def compile_criterion(o: CompileCriterionOptions, progress: Progress) -> CompileCriterionResult:
    from interp_lab.criteria import compile as compiler

    c = compiler.compile_criterion(o.criterion, model=o.model, prompts=o.prompts, dataset=o.dataset,
                                   progress=progress)
    return CompileCriterionResult(compiled=c, prompts=c.write(o.out), paths={"prompts": Path(o.out)})
