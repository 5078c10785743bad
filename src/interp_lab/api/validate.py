"""``interp-lab validate`` and ``convert-records``: check a file against its format without running
anything; convert activation records to Parquet."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.evidence.causal import load_interventions
from interp_lab.io.prompts import read_prompts
from interp_lab.io.records import RecordMatrix, read_records, write_records_parquet
from interp_lab.providers.features import load_dump
from interp_lab.schemas.command import Progress, option

Kind = Literal["records", "features", "interventions", "prompts"]
KINDS: tuple[str, ...] = typing.get_args(Kind)


@dataclass(kw_only=True)
class ValidateOptions:
    """The file to check and its format."""

    path: Path = option(help="File to check.", argument=True)
    kind: Kind = option("records", "The file's format.")


@dataclass
class ValidateResult:
    """The file checked, its format, and what it holds (counts by name: rows, features, non-zero ...)."""

    path: Path
    kind: str
    summary: dict[str, int]


@command("validate", options=ValidateOptions, result=ValidateResult, group="utilities", positional=("path", "kind"),
         help="Validate a file against its interp-lab format; print one line per problem found (the first).")
def validate(o: ValidateOptions, progress: Progress) -> ValidateResult:
    if o.kind not in KINDS:
        raise UsageError(f"unknown --kind {o.kind!r} (use {', '.join(KINDS)})")
    if o.kind == "records":
        m = _read_records(o.path, progress)
        summary = {"rows": m.n_rows, "features": m.n_features, "non-zero": int(m.X.nnz),
                   "scored": int((m.scores == m.scores).sum())}
    elif o.kind == "features":
        summary = {"features": len(load_dump(o.path).rows)}
    elif o.kind == "interventions":
        summary = {"rows": load_interventions(o.path, None).rows_read}
    else:
        summary = {"prompts": len(read_prompts(o.path))}
    return ValidateResult(path=Path(o.path), kind=o.kind, summary=summary)


@dataclass(kw_only=True)
class ConvertRecordsOptions:
    """Activation records in, the Parquet file out."""

    src: Path = option(help="Activation records JSONL (.jsonl, .gz, .zst).", argument=True)
    dst: Path = option(help="Parquet file to write.", argument=True)


@dataclass
class ConvertRecordsResult:
    """What the Parquet file holds (rows, features, non-zero activations) and where it is (``paths``)."""

    rows: int
    features: int
    nonzero: int
    paths: dict[str, Path] = field(default_factory=dict)


@command("convert-records", options=ConvertRecordsOptions, result=ConvertRecordsResult, group="utilities",
         positional=("src", "dst"), help="Convert activation records to Parquet (validated; feature ids "
                                         "dictionary-encoded).")
def convert_records(o: ConvertRecordsOptions, progress: Progress) -> ConvertRecordsResult:
    dst = Path(o.dst)
    if dst.suffix != ".parquet":
        raise UsageError(f"{dst}: the output must end in .parquet")
    m = _read_records(o.src, progress)
    write_records_parquet(m, dst)
    return ConvertRecordsResult(rows=m.n_rows, features=m.n_features, nonzero=int(m.X.nnz), paths={"parquet": dst})


def _read_records(path: Path, progress: Progress) -> RecordMatrix:
    return read_records(path, progress=lambda done, total: progress("reading records", done, total))
