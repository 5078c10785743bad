"""``intervene`` and ``export-hf-interventions``: features named or taken from a report, edited on held-out
prompts with controls, and their causal evidence; the helpers ``contrast`` and ``train-sae --causal-out``
share (reading a report's cards, writing records, the evidence of what was run)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab import defaults
from interp_lab.api.registry import command
from interp_lab.errors import InputError, UsageError
from interp_lab.interventions.settings import InterventionSettings, controls_option, kinds_option
from interp_lab.providers.hf import Setup, load, setup
from interp_lab.schemas.command import Progress, comma_list, option


def model_option(help: str = "") -> Any:
    """The model a command runs on: a name, directory or HF id on the command line (default the registry's
    default model), and also a loaded model in the Python API, where it is the first positional argument."""
    return option(help=help, cli_type=str, cli_default=defaults.MODEL)


def features_from_report(report: str | os.PathLike, top_k: int | None) -> tuple[list[str], dict, dict[str, int]]:
    """The report's card ids in rank order (the first ``top_k``), the directions saved beside it, and each
    card's discovery direction (+1 promotes, -1 suppresses; cards whose direction comes from association)."""
    from interp_lab.evidence.causal import claim_of
    from interp_lab.interventions.contrast import load_directions

    p = Path(report)
    try:
        data = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise InputError(p, "no such report") from None
    except ValueError as exc:
        raise InputError(p, f"not a JSON report ({exc})") from None
    cards = data.get("cards") if isinstance(data, dict) else None
    if not isinstance(cards, list):
        raise InputError(p, "a report needs a 'cards' list", field="cards")
    ids = [c["feature_id"] for c in cards if isinstance(c, dict) and "feature_id" in c]
    claims = {c["feature_id"]: claim_of(c.get("direction")) for c in cards
              if isinstance(c, dict) and "feature_id" in c and c.get("association") is not None}
    beside = p.parent / "directions.safetensors"
    return (ids[:top_k] if top_k else ids, (load_directions(beside) if beside.exists() else {}),
            {f: c for f, c in claims.items() if c is not None})


def write_records(records: Sequence[dict[str, Any]], out: str | os.PathLike) -> int:
    from interp_lab.io.jsonl import write_jsonl

    return write_jsonl(out, records)


def run_claims(run: Any) -> dict[str, int]:
    """The direction a run fixed for each steered feature before testing it (from discovery prompts): its
    steering calibrations' ``claimed_direction`` (an InterventionRun keeps no other claims)."""
    from interp_lab.evidence.causal import claim_of

    got = {f: claim_of(i.get("claimed_direction")) for f, i in (run.strengths or {}).items() if isinstance(i, dict)}
    return {f: c for f, c in got.items() if c is not None}


def summarize(records: Sequence[dict[str, Any]], compiled: Any, seed: int = 0,
              claims: dict[str, int] | None = None, strengths: dict[str, Any] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Causal evidence per feature and kind for what was just run on the ``compiled`` criterion's prompts, with
    the verdicts ``inspect`` records for these records (``evidence.causal`` with its settings; the criterion's
    held-out prompts are every one available, as the records of the same prompts tell inspect). ``claims``:
    each feature's discovery direction (+1 / -1; a feature without one is tested two-sided, and its entries
    say so); ``strengths``: the run's steering calibrations (dose-response, KL budget)."""
    from interp_lab.evidence.causal import CausalSettings, causal_evidence, interventions_from_dicts

    table = interventions_from_dicts(list(records), compiled.spec.criterion, name="interventions")
    return causal_evidence(table, CausalSettings(seed=seed), len(compiled.split("heldout")), claims=claims,
                           strengths=strengths)


@dataclass(kw_only=True)
class InterveneOptions:
    """``intervene``'s options: which features, on which prompts, with which settings."""

    model: Any = model_option("Registered name, local directory or HF id.")
    criterion: str = option(help="Criterion spec file (or text: semantic).")
    features: tuple[str, ...] = option((), "Comma list of feature ids (L12:N1043, L10:R5, L9:D0, L15:F2210 with "
                                       "--sae).", flag="--feature-ids", deprecated=("--features",), param="features",
                                       cli_type=str, cli_default="", convert=comma_list)
    sae: Path | None = option(None, "SAE checkpoint whose latents the F ids name.")
    report: Path | None = option(None, "Take features from a report's cards (directions.safetensors beside it is "
                                       "read).")
    top_k: int | None = option(None, "With --report: its first k cards.", min=1)
    directions: Path | None = option(None, "directions.safetensors for D features.")
    prompts: str | None = option(None, "Prompt set (overrides the spec's).")
    settings: InterventionSettings = option(default_factory=InterventionSettings)
    side_prompts: str | None = option(None, "Where they come from (default lee).", flag="--side-dataset",
                                      param="side_dataset")  # the unrelated prompts' set; settings.side_prompts: how many
    out: Path | None = option(None, "Intervention records (JSONL) for inspect --interventions.",
                              required=True)  # required on the command line; the API may keep them in memory
    claims_for: dict[str, int] | None = option(None, cli=False)  # each feature's direction (+1 / -1), given


@dataclass
class InterveneResult:
    """What ``intervene`` ran and found."""

    run: Any  # interventions.run.InterventionRun: the records and the steering calibrations (``strengths``)
    evidence: dict[str, dict[str, Any]]  # per feature: its causal entries per kind (``summarize``)
    paths: dict[str, Path] = field(default_factory=dict)  # "interventions": the records written
    setup: Setup | None = None  # the loaded model, compiled criterion, scorer and unrelated prompts


@command("intervene", options=InterveneOptions, result=InterveneResult, group="inspect", log=True,
         positional=("model", "criterion"),
         help="Ablate, steer, clamp or patch features on held-out prompts, with controls (evidence.md rule 7).")
def intervene(o: InterveneOptions, progress: Progress) -> InterveneResult:
    """Run the settings' intervention kinds, with controls, on features named or taken from a report.
    ``sae``: the checkpoint whose latents the ``L{layer}:F{i}`` ids name. Each feature is tested in the
    direction ``claims_for`` gives it (+1 promotes, -1 suppresses), else its report card's, else the one
    the run finds on discovery prompts, else two-sided."""
    from interp_lab.interventions.contrast import load_directions
    from interp_lab.interventions.features import resolve_targets
    from interp_lab.interventions.run import run_interventions

    ids = list(o.features)
    dirs: dict = {}
    claims: dict[str, int] = {}
    if o.report is not None:
        from_report, dirs, claims = features_from_report(o.report, o.top_k)
        ids += [f for f in from_report if f not in ids]
    if o.directions is not None:
        dirs = {**dirs, **load_directions(o.directions)}
    if not ids:
        raise UsageError("name the features to intervene on (--feature-ids, or --report with its cards)")
    settings = o.settings
    lm = load(o.model, progress)
    targets = resolve_targets(lm, ids, dirs, sae_latents(o.sae))  # bad ids fail before the criterion is compiled
    s = setup(lm, o.criterion, prompts=o.prompts, side_prompts=o.side_prompts, n_side=settings.side_prompts,
              say=progress)
    given = {**claims, **dict(o.claims_for or {})}  # steering is calibrated in these directions too
    run = run_interventions(s.lm, s.compiled.rows, targets, s.scorer, s.unrelated, criterion=s.compiled.spec.criterion,
                            settings=settings, progress=progress, claims=given)
    claims = {**run_claims(run), **given}
    result = InterveneResult(run, summarize(run.records, s.compiled, settings.seed, claims, run.strengths), setup=s)
    if o.out is not None:
        write_records(run.records, o.out)
        result.paths["interventions"] = Path(o.out)
    return result


@dataclass(kw_only=True)
class ExportInterventionsOptions:
    """``export-hf-interventions`` (the 0.2 command): ``intervene`` on a report's top cards, ablations by
    default, the other settings at their defaults."""

    model: str = option(defaults.MODEL)
    report: Path = option(help="report.json whose top cards are tested.")
    dataset: str | None = option(None, "Prompt set (else the criterion spec's).", flag="--prompts",
                                 deprecated=("--dataset",), param="dataset")
    criterion: str = option(help="Criterion spec file (or text).")
    top_k: int = option(10, "The report's first k cards are tested.", min=1)
    kinds: tuple[str, ...] = kinds_option(("ablate", "mean_ablate"))
    n_controls: int = controls_option()
    out: Path = option(help="Intervention records (JSONL).")


@command("export-hf-interventions", options=ExportInterventionsOptions, result=InterveneResult, group="inspect",
         log=True, help="Ablation records for a report's top features, with controls (the 0.2 command).")
def export_hf_interventions(o: ExportInterventionsOptions, progress: Progress) -> InterveneResult:
    settings = InterventionSettings(kinds=o.kinds, n_controls=o.n_controls)
    return intervene(o.model, o.criterion, report=o.report, top_k=o.top_k, prompts=o.dataset, settings=settings,
                     out=o.out, progress=progress)


def sae_latents(sae: str | os.PathLike | None) -> dict[int, Any] | None:
    """The latent space of the SAE checkpoint ``sae`` by its layer (what ``L{layer}:F{i}`` ids resolve in)."""
    if sae is None:
        return None
    from interp_lab.sae.space import latent_space

    space = latent_space(sae)
    return {space.layer: space}
