"""``interp-lab export-neuronpedia``: a report's cards, and an SAE's latents in an activation store, as
Neuronpedia feature JSON (one file per feature, the shape ``GET /api/feature/...`` answers), which
``inspect --backend neuronpedia --neuronpedia-json DIR`` reads back (docs/providers/neuronpedia.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.schemas.command import Progress, comma_ints, option


@dataclass(kw_only=True)
class ExportNeuronpediaOptions:
    report: Optional[Path] = option(None, "Inspection report (report.json or its directory): its cards are exported.")
    store: Optional[Path] = option(None, "Activation store whose SAE latents (store encode) are exported.")
    latents: Optional[str] = option(None, "With --store: the encoding, its sae_id under latents/ (as store top "
                                          "--latents).")
    feature_indexes: tuple[int, ...] = option((), "With --store: the latents exported, e.g. 3,17,200.",
                                              cli_type=Optional[str], cli_default=None, convert=comma_ints)
    top_k: int = option(20, "With --store: top activations per latent.", min=1)
    out: Optional[Path] = option(None, "Directory: one <model>@<source>@<index>.json per feature.", required=True)


@dataclass
class ExportNeuronpediaResult:
    """The files written, by the feature each holds (``model@source:index``), and the report's cards left out
    (feature id: why)."""

    files: dict[str, Path]
    skipped: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)  # out: the directory


def _file_name(identity: tuple[str, str, int]) -> str:
    model, source, index = identity
    return re.sub(r"[^A-Za-z0-9._@-]", "_", f"{model}@{source}@{index}") + ".json"


def _report_responses(path: Path, skipped: dict[str, str]) -> list[tuple[str, tuple[str, str, int], dict[str, Any]]]:
    """(feature id, identity, response) of each card of a report that has an index."""
    from interp_lab.api.match import _read_report, _report_file
    from interp_lab.providers.neuronpedia_format import identity_of, response_of_card

    rep = _read_report(_report_file(path))
    out = []
    for card in rep["cards"]:
        identity = identity_of(card, rep.get("model"))
        if identity is None:
            skipped[card["feature_id"]] = "its id has no index Neuronpedia could file it under"
            continue
        out.append((card["feature_id"], identity, response_of_card(card, identity)))
    return out


@command("export-neuronpedia", options=ExportNeuronpediaOptions, result=ExportNeuronpediaResult, group="inspect",
         help="Write a report's cards, or an SAE's latents in a store, as Neuronpedia feature JSON (one file per "
              "feature; inspect --neuronpedia-json reads them back).")
def export_neuronpedia(o: ExportNeuronpediaOptions, progress: Progress) -> ExportNeuronpediaResult:
    """Each card of ``report`` (and each latent ``feature_indexes`` of the store's encoding ``latents``) as one
    JSON file in ``out``, in Neuronpedia's feature response shape; all files or none."""
    from interp_lab.io.atomic import atomic_dir

    if o.out is None:
        raise UsageError("export-neuronpedia needs --out DIR")
    if o.report is None and o.store is None:
        raise UsageError("export-neuronpedia needs --report (a report's cards) or --store (an SAE's latents)")
    if (o.store is None) != (o.latents is None) or (o.store is None) != (not o.feature_indexes):
        raise UsageError("--store, --latents and --feature-indexes go together (the store, its encoding and the "
                         "latents exported)")
    skipped: dict[str, str] = {}
    responses = [] if o.report is None else _report_responses(Path(o.report), skipped)
    if o.store is not None:
        from interp_lab.providers.neuronpedia_store import latent_responses

        responses += latent_responses(o.store, o.latents, o.feature_indexes, k=o.top_k, progress=progress)
    names: dict[str, tuple[str, str]] = {}  # file name -> (feature id, model@source:index)
    for fid, (model, source, index), _ in responses:
        name = _file_name((model, source, index))
        if name in names:
            raise UsageError(f"{names[name][0]} and {fid} would both be written as {name}")
        names[name] = (fid, f"{model}@{source}:{index}")
    out = Path(o.out)
    with atomic_dir(out) as tmp:
        for name, (_, _, resp) in zip(names, responses):
            (tmp / name).write_text(json.dumps(resp, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    return ExportNeuronpediaResult(files={key: out / name for name, (_, key) in names.items()}, skipped=skipped,
                                   paths={"out": out})
