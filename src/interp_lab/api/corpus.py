"""``probe_set()`` and ``export_hf_records()``: files made from a corpus, for other commands to read: a probe
set (corpus sentences whose word spans key activation fingerprints across models, for ``inspect --probes``)
and pooled activation records of a Hugging Face model (for ``inspect --backend records``), read by interp-lab's
hooks, TransformerLens or nnsight (``export_transformerlens_records()``, ``export_nnsight_records()``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.io.datasets import DATASET_HELP, TEXT_COLUMN_HELP
from interp_lab.schemas.command import Progress, option


@dataclass(kw_only=True)
class ProbesOptions:
    """The options of ``probes``."""

    out: Path = option(help="Probe set to write (prompt JSONL).")
    dataset: str = option("lee+enwiki", "Documents split into sentences: " + DATASET_HELP)
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    n: int = option(2400, "Sentences, shared equally between the corpora.", min=1)
    min_chars: int = option(60, min=1)
    max_chars: int = option(320, min=1)
    seed: int = option(0)


@dataclass
class ProbeSetResult:
    """A probe set written by ``probes``."""

    probes: int
    """Sentences in it."""
    paths: dict[str, Path] = field(default_factory=dict)
    """``probes``: the prompt JSONL."""


@command("probes", options=ProbesOptions, result=ProbeSetResult, group="models and stores",
         help="Build a probe set: corpus sentences whose word spans key activation signatures across models.")
def probe_set(o: ProbesOptions, progress: Progress) -> ProbeSetResult:
    from interp_lab.harvest.probes import make_probe_set, write_probe_set

    rows = make_probe_set(o.dataset, o.n, min_chars=o.min_chars, max_chars=o.max_chars, seed=o.seed,
                          text_column=o.text_column)
    return ProbeSetResult(probes=len(rows), paths={"probes": write_probe_set(rows, o.out)})


@dataclass(kw_only=True)
class PooledRecordsOptions:
    """The options every ``export-*-records`` command has."""

    model: Any = option(defaults.MODEL, "Registered name, local directory or HF id.", cli_type=str)  # or a LoadedModel
    dataset: str = option(help=DATASET_HELP + " A prompt JSONL's criterion_score, split and labels are carried "
                               "over.")
    text_column: str | None = option(None, TEXT_COLUMN_HELP)
    out: Path = option(help="Activation records: .jsonl[.gz|.zst] or .parquet.")
    pooling: Literal["mean", "max", "last"] = option("mean", "Over each prompt's tokens.")
    batch_size: int = option(8, min=1)
    context_length: int = option(256, min=2)
    top_k_features: int | None = option(None, "Keep the k largest |activations| per layer and row.", min=1)


@dataclass(kw_only=True)
class ExportRecordsOptions(PooledRecordsOptions):
    """The options of ``export-hf-records`` and ``export-transformerlens-records``."""

    layers: str = option("middle", "all, middle, or a list / ranges: 6 or 3-9,12.")
    kind: Literal["residual", "neurons"] = option("residual", "residual (L{i}:R{dim}) or neurons (L{i}:N{index}).")


@dataclass(kw_only=True)
class ExportNnsightRecordsOptions(PooledRecordsOptions):
    """The options of ``export-nnsight-records``."""

    activation_path: str = option(help="nnsight module path read in the trace: a block's output "
                                       "(model.layers.6.output[0], transformer.h[6].output[0]; L{i}:R{dim}) or its "
                                       "MLP neurons (model.layers.6.mlp.down_proj.input; L{i}:N{index}).")


@dataclass
class ExportRecordsResult:
    """Activation records written by ``export-hf-records`` (``export-transformerlens-records``,
    ``export-nnsight-records``): one per prompt, the pooled activations of every residual dimension
    (``L{i}:R{dim}``) or MLP neuron (``L{i}:N{index}``) of the chosen layers."""

    out: Path
    rows: int
    """Records written (one per prompt)."""
    hooks: list[str]
    """The hooks read, e.g. ``blocks.15.hook_resid_post``."""
    features_per_row: int | None
    """At most this many features per record (``top_k_features`` x hooks); None: every non-zero one."""
    pooling: str
    paths: dict[str, Path] = field(default_factory=dict)


def _export(o: PooledRecordsOptions, progress: Progress, engine: str, **site: Any) -> ExportRecordsResult:
    from interp_lab.harvest.records import export_records

    info = export_records(o.model, o.dataset, o.out, pooling=o.pooling, batch_size=o.batch_size,
                          context_length=o.context_length, top_k_features=o.top_k_features,
                          text_column=o.text_column, progress=progress, engine=engine, **site)
    out = Path(info["out"])
    return ExportRecordsResult(out=out, rows=info["rows"], hooks=info["hooks"],
                               features_per_row=info["features_per_row"], pooling=info["pooling"],
                               paths={"records": out})


@command("export-hf-records", options=ExportRecordsOptions, result=ExportRecordsResult, group="models and stores", log=True,
         help="Export pooled activation records of residual dimensions or MLP neurons from a Hugging Face model.")
def export_hf_records(o: ExportRecordsOptions, progress: Progress) -> ExportRecordsResult:
    return _export(o, progress, "hooks", layers=o.layers, kind=o.kind)


@command("export-transformerlens-records", options=ExportRecordsOptions, result=ExportRecordsResult,
         group="models and stores", log=True,
         help="Export pooled activation records of residual dimensions or MLP neurons read through TransformerLens "
              "(TransformerBridge on the Hugging Face model).")
def export_transformerlens_records(o: ExportRecordsOptions, progress: Progress) -> ExportRecordsResult:
    return _export(o, progress, "transformerlens", layers=o.layers, kind=o.kind)


@command("export-nnsight-records", options=ExportNnsightRecordsOptions, result=ExportRecordsResult,
         group="models and stores", log=True,
         help="Export pooled activation records of the module output an nnsight activation path names "
              "(--activation-path transformer.h[6].output[0]), read in an nnsight trace.")
def export_nnsight_records(o: ExportNnsightRecordsOptions, progress: Progress) -> ExportRecordsResult:
    return _export(o, progress, "nnsight", activation_path=o.activation_path)
