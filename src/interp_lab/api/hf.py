"""``inspect --backend hf`` (and ``--backend sae``): from a criterion to causal evidence on a real model.

1. compile the criterion into scored, split prompts (the model scores next_token / contrast kinds);
2. read every prompt's last token at the neuron and residual hooks of the chosen layers, and fit
   contrast directions on discovery prompts; with an SAE, encode its hook into latents
   (``providers.hf``; cached on disk). ``--backend sae`` makes the SAE's latents the only candidates;
3. the ranker picks candidates on discovery rows (``evidence.rank``, in ``inspect``);
4. each candidate is tested by interventions with controls matched on the realised edit (and, for
   contrast directions, label-permuted refits): steering strength chosen on calibration prompts under a
   side-effect budget, effects measured on held-out ones (``interventions.run``);
5. the top cards get their top activating contexts over a corpus (``harvest.scan``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab import defaults
from interp_lab.errors import UsageError
from interp_lab.io.specs import criterion_file
from interp_lab.providers.hf import Candidates, HFOptions

Progress = Callable[..., None]


@dataclass
class HFRun:
    candidates: Candidates
    options: HFOptions
    seed: int
    backend: str = "hf"
    run: Any = None  # interventions.run.InterventionRun
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def lm(self):
        return self.candidates.setup.lm

    @property
    def compiled(self):
        return self.candidates.setup.compiled


def units_for(backend: str, options: HFOptions) -> str:
    """The candidate units: the options' (plus F, the SAE's latents, when one is given); the latents
    alone for ``--backend sae``."""
    if backend == "sae":
        if not options.sae:
            raise UsageError("--backend sae needs --sae (an SAE checkpoint directory)")
        return "F"
    return options.units + ("F" if options.sae and "F" not in options.units else "")


def collect_evidence(model: Any, criterion: str, options: HFOptions, seed: int, say: Progress,
                     backend: str = "hf"):
    """Steps 1-2: the ``_Evidence`` the ranker reads and the run that goes on to test candidates."""
    from interp_lab.io.inputs import InputInfo
    from interp_lab.providers.base import Evidence
    from interp_lab.providers.hf import collect, setup

    units = units_for(backend, options)
    options.settings(seed)  # intervention options (kinds, strengths, kl_budget) checked before the model loads
    if options.probes:  # checked before the model loads and the criterion compiles
        from interp_lab.harvest.probes import read_probe_set

        read_probe_set(options.probes)
    t0 = time.perf_counter()
    s = setup(model or defaults.MODEL, criterion, prompts=options.prompts, dataset=options.dataset,
              side_prompts=options.side_dataset, n_side=options.side_prompts, say=say)
    t1 = time.perf_counter()
    cand = collect(s, layers=options.layers, units=units, batch_size=options.batch_size, cache=options.cache,
                   sae=options.sae, say=say)
    run = HFRun(cand, options, seed, backend, timings={"compile": t1 - t0, "activations": time.perf_counter() - t1})
    ev = Evidence(backend=backend)
    ev.matrix = ev.rank_on = cand.matrix
    lm, compiled = s.lm, s.compiled
    ev.inputs.append(InputInfo(role="model", name=lm.name, params=lm.manifest()))
    if options.sae:
        ev.inputs.append(_sae_input(options.sae, cand))
    spec_file = criterion_file(criterion)
    if spec_file is not None:
        ev.inputs.append(InputInfo.file("criterion", criterion))
    if options.probes:
        ev.inputs.append(InputInfo.file("probes", options.probes))
    source = Path(compiled.source)
    spec_dir = spec_file.parent if spec_file is not None else Path(".")
    for candidate in (source, spec_dir / source, Path(compiled.spec.prompts or "")):
        if candidate.is_file():
            ev.inputs.append(InputInfo.file("prompts", candidate, rows=len(compiled.rows)))
            break
    else:
        ev.inputs.append(InputInfo(role="corpus", name=compiled.source, rows=len(compiled.rows),
                                   params={k: v for k, v in compiled.info.items() if k != "derived_targets"}))
    ev.notes.append(f"criterion compiled ({compiled.spec.kind}, scored by {compiled.score_kind}) into "
                    + ", ".join(f"{k} {v}" for k, v in compiled.counts.items()) + " prompts")
    derived = compiled.info.get("derived_targets")
    if derived:
        words = [w.strip() for w in derived["words"]]
        ev.notes.append(f"under edits the criterion is measured as the next-token mass on the {len(words)} "
                        f"vocabulary words closest to it ({', '.join(words[:12])}, ...; all in "
                        "settings.pipeline.selection_info)")
    where = [f"layers {_layers_text(cand.layers)} ({units.replace('F', '')})"] if cand.layers else []
    if cand.latents is not None:
        sae = cand.info["sae"]
        where.append(f"the {sae['d_sae']:,} latents of the {sae['architecture']} SAE at {sae['hook']} (F)")
    ev.notes.append(f"candidates: {cand.info['features']:,} features at the last prompt token: "
                    + " and ".join(where))
    if cand.forced:
        ev.notes.append("contrast directions chosen on calibration prompts and tested whatever their discovery "
                        f"rank: {', '.join(cand.forced)}")
    return ev, run


def run_validation(hf: HFRun, feature_ids: list[str], say: Progress, claims: dict[str, int] | None = None):
    """Step 4: intervention records for the candidates, as an ``InterventionTable``; ``claims``: the ranker's
    discovery direction of each (+1 / -1), which steering strengths are calibrated in."""
    from interp_lab.evidence.causal import interventions_from_dicts
    from interp_lab.providers.hf import validate

    t = time.perf_counter()
    o = hf.options
    hf.run = validate(hf.candidates, feature_ids, o.settings(hf.seed), neuron_kinds=o.neuron_kinds,
                      direction_kinds=o.direction_kinds, latent_kinds=o.latent_kinds, cache=o.cache, say=say,
                      claims=claims)
    hf.timings["interventions"] = time.perf_counter() - t
    return interventions_from_dicts(hf.run.records, hf.compiled.spec.criterion,
                                    name="interventions run by interp-lab")


def add_contexts(hf: HFRun, cards: list[dict[str, Any]], say: Progress) -> None:
    """Step 5: the top cards' top activating contexts over every position of the options' corpus."""
    o = hf.options
    if not o.contexts or not cards:
        return
    from interp_lab.harvest.scan import top_contexts

    t = time.perf_counter()
    chosen = cards[: o.contexts_cards]
    targets = hf.candidates.targets([c["feature_id"] for c in chosen])
    got = top_contexts(hf.lm, o.contexts, targets, max_tokens=o.contexts_max_tokens, cache=o.cache,
                       dtype=o.contexts_dtype,
                       progress=lambda d, n: say(f"top contexts over {o.contexts}", d, n))
    target_ids = set(hf.compiled.target_ids)
    for card in chosen:
        res = dict(got[card["feature_id"]])
        res.pop("cached", None)
        if target_ids:
            res["next_token_in_targets"] = sum(c["next_token_id"] in target_ids for c in res["contexts"])
        card["corpus_contexts"] = res
    hf.timings["contexts"] = time.perf_counter() - t


def add_probe_signatures(hf: HFRun, cards: list[dict[str, Any]], say: Progress) -> None:
    """With ``probes``: every card's ``fingerprint.activation`` becomes its values at the word spans of the
    probe set (``harvest.probes``), keyed ``prompt_id@start-end`` so that another model's cards share the
    keys; ``fingerprint.activation_probes`` says how they were read."""
    o = hf.options
    if not o.probes or not cards:
        return
    from interp_lab.harvest.probes import probe_signatures

    t = time.perf_counter()
    targets = hf.candidates.targets([c["feature_id"] for c in cards])
    hook_of = {tg.feature_id: tg.hook for tg in targets}
    sigs, info = probe_signatures(hf.lm, o.probes, targets, per_probe=o.probe_spans, cache=o.cache,
                                  progress=lambda d, n: say(f"probe signatures over {Path(o.probes).name}", d, n))
    for card in cards:
        fp = card.setdefault("fingerprint", {})
        fp["activation"] = sigs[card["feature_id"]]
        hook = hook_of[card["feature_id"]]
        fp["activation_probes"] = {**{k: v for k, v in info.items() if k != "excluded_outlier_tokens"},
                                   "hook": hook, "excluded_outlier_tokens": info["excluded_outlier_tokens"][hook]}
    hf.timings["probes"] = time.perf_counter() - t


def add_vocab(hf: HFRun, cards: list[dict[str, Any]]) -> None:
    """Every card's output-side fingerprint (``fingerprint.vocab``): the tokens its write vector promotes
    and suppresses through the final norm and unembedding."""
    from interp_lab.interventions.vocab import vocab_signatures

    if not cards:
        return
    t = time.perf_counter()
    got = vocab_signatures(hf.lm, hf.candidates.targets([c["feature_id"] for c in cards]))
    for card in cards:
        if card["feature_id"] in got:
            card.setdefault("fingerprint", {})["vocab"] = got[card["feature_id"]]
    hf.timings["vocab"] = time.perf_counter() - t


def pipeline_settings(hf: HFRun) -> dict[str, Any]:
    """What the report's ``settings.pipeline`` says about how the evidence was made."""
    run = hf.run
    return {
        "backend": hf.backend,
        "options": hf.options.as_dict(),
        "units": units_for(hf.backend, hf.options),
        "criterion_kind": hf.compiled.spec.kind,
        "score_kind": hf.compiled.score_kind,
        "measured_under_edits_by": hf.candidates.setup.scorer.kind,
        "position": "features read at the last prompt token; edits from the last prompt token on",
        "prompts": hf.compiled.counts,
        "selection_info": hf.compiled.info,
        "intervention_prompts": None if run is None else run.prompts,
        "steering": None if run is None else run.strengths,
    }


def run_info(hf: HFRun, base: str | os.PathLike) -> dict[str, Any]:
    """For the manifest in the directory ``base`` only (it differs between a fresh run and a cached rerun;
    report.json must not)."""
    from interp_lab.io.paths import recorded_path

    run = hf.run
    path = hf.candidates.acts_path
    return {"activations": hf.candidates.info["activations"],
            "activations_file": None if path is None else recorded_path(path, base),
            "intervention_runs": None if run is None else run.runs,
            "intervention_targets_from_cache": None if run is None else run.cached_targets}


def extra_files(hf: HFRun) -> dict[str, bytes]:
    """Files written beside the report: directions (safetensors), compiled prompts, intervention records."""
    from interp_lab.interventions.contrast import directions_bytes

    out: dict[str, bytes] = {}
    if hf.candidates.directions:
        out["directions.safetensors"] = directions_bytes(
            hf.candidates.directions, {"model": hf.lm.name, "revision": hf.lm.revision or "",
                                       "criterion": hf.compiled.spec.criterion})
    out["prompts.jsonl"] = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in hf.compiled.rows)
    if hf.run is not None:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as fh:
            for r in hf.run.records:
                fh.write(json.dumps(r, sort_keys=True).encode() + b"\n")
        out["interventions.jsonl.gz"] = buf.getvalue()
    return out


def _sae_input(path: str, cand: Candidates):
    """The SAE as an input of the report: its directory, the sha256 of its weights, what it reads."""
    from interp_lab.io.inputs import InputInfo

    sae = cand.info["sae"]
    return InputInfo(role="sae", name=Path(path).name, sha256=cand.latents.fingerprint or None, path=str(path),
                     params={k: sae[k] for k in ("hook", "architecture", "d_sae")})


def _layers_text(layers: list[int]) -> str:
    if layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))
