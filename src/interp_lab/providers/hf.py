"""The ``hf`` provider: candidate features of a Hugging Face causal LM for a criterion, and their interventions.

From the compiled criterion's prompts, one pass reads every prompt's last
token at ``mlp.hook_post`` (MLP neurons, ``L{i}:N{j}``) and
``hook_resid_post`` (residual dimensions, ``L{i}:R{j}``) of the chosen
layers; per layer, contrast directions (``D0`` difference of class means,
``D1`` logistic probe) are fitted on discovery prompts and their projections
added; with an SAE, its latents (``L{i}:F{j}``) are read at its hook through
its encoder (``sae.space``). The result is an activation-record matrix the
ranker reads like any other. The activations are cached on disk (keyed by model revision, hooks and
prompt texts), so a rerun with other candidates or settings reuses them.

The provider delivers evidence and runs the interventions it is asked for;
choosing candidates (evidence.rank) and judging them (evidence.causal) happen
above it.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pyarrow as pa

from interp_lab import defaults
from interp_lab.errors import UsageError
from interp_lab.interventions.settings import controls_option, kinds_option, strengths_option
from interp_lab.io.prompts import prompt_covariates
from interp_lab.io.record_matrix import SPLIT_CODES, RecordMatrix
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.command import comma_list, option, str_or_none
from interp_lab.schemas.feature_id import HOOK_OF_KIND, format_id, kind_of, layer_of

Progress = Callable[..., None]
UNITS = {k: HOOK_OF_KIND[k] for k in "NR"}
ACTS_VERSION = "last-token-v1"


@dataclass(frozen=True)
class HFOptions:
    """What ``inspect --backend hf`` computes, beyond the ranking and causal settings."""

    prompts: str | None = option(None, "hf: prompt set overriding the criterion spec's.")
    dataset: str | None = option(None, "hf: corpus of a semantic criterion (default lee+enwiki).")
    layers: str = option("all", "hf: layers whose units become candidates (all, middle, 3-9,12).")
    units: str = option("NRD", "hf: N neurons, R residual dimensions, D contrast directions (F, SAE latents, is "
                               "added with --sae).")
    sae: str | None = option(None, "hf / sae: SAE checkpoint whose latents become candidates (--backend sae: the "
                                   "only ones).", cli_type=Optional[Path], convert=str_or_none)
    # as given (comma_list): HFOptions.settings() puts the three lists together, each kind once
    latent_kinds: tuple[str, ...] = kinds_option(("ablate", "steer"), "hf / sae: interventions testing SAE latents.",
                                                 convert=comma_list)
    neuron_kinds: tuple[str, ...] = kinds_option(("mean_ablate",), "hf: interventions testing neurons and residual "
                                                 "dimensions.", convert=comma_list)
    direction_kinds: tuple[str, ...] = kinds_option(("steer", "ablate"), "hf: interventions testing directions.",
                                                    convert=comma_list)
    n_controls: int = controls_option("hf: random controls per feature and kind.")
    strengths: tuple[float, ...] = strengths_option("hf: " + defaults.STRENGTHS_HELP)
    kl_budget: float = option(defaults.KL_BUDGET, "hf: " + defaults.KL_BUDGET_HELP, min=0.0)
    side_prompts: int = option(64, "hf: unrelated prompts for side effects.", min=0)
    side_dataset: str | None = option(None, "Where the unrelated prompts come from (default lee).", cli=False)
    batch_size: int = option(64, "hf: prompts per batch.", min=1)
    contexts: str | None = option("lee", "hf: corpus scanned for the top cards' activating contexts ('' to skip; "
                                         "lee+enwiki for all of it).", cli_type=str, convert=str_or_none)
    contexts_cards: int = option(3, "hf: top cards that get them.", min=0)
    contexts_max_tokens: int | None = option(None, min=1)
    contexts_dtype: Literal["bfloat16", "float32"] = option("bfloat16", "hf: compute of the corpus scan.")
    cache: bool = option(True, "hf: recompute activations and context scans.", flag="--no-cache", param="no_cache",
                         cli_type=bool, cli_default=False, convert=operator.not_)
    probes: str | None = option(None, "hf: probe set (prompt JSONL with prompt_ids, e.g. from `interp-lab probes`): "
                                      "the cards' activation fingerprints become their values at its word spans, "
                                      "comparable across tokenizers.", cli_type=Optional[Path], convert=str_or_none)
    probe_spans: int = option(4, "hf: word spans read per probe.", min=1)

    def __post_init__(self) -> None:
        if not 0 < self.kl_budget < float("inf"):
            raise UsageError(f"--kl-budget: {self.kl_budget:g} is not a positive number of nats")

    def settings(self, seed: int):
        from interp_lab.interventions.settings import InterventionSettings

        return InterventionSettings(kinds=tuple(dict.fromkeys(self.neuron_kinds + self.direction_kinds
                                                              + (self.latent_kinds if self.sae else ()))),
                                    n_controls=self.n_controls, strengths=self.strengths, kl_budget=self.kl_budget,
                                    side_prompts=self.side_prompts, batch_size=self.batch_size, seed=seed)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_value(cls, value: HFOptions | dict[str, Any] | None) -> HFOptions:
        """Options from a run config's mapping (lists become tuples; unknown keys are refused)."""
        if value is None or isinstance(value, HFOptions):
            return value or cls()
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown hf option(s) {sorted(unknown)} (known: {', '.join(cls.__dataclass_fields__)})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


@dataclass
class Setup:
    """A loaded model, a compiled criterion, how the model measures it, and prompts for side effects."""

    lm: Any
    compiled: Any
    scorer: Any
    unrelated: list[str]


def load(model: Any, say: Progress | None = None):
    from interp_lab.models.load import LoadedModel, load_model

    if say:
        say("loading the model", 0, None)
    return model if isinstance(model, LoadedModel) else load_model(str(model))


def setup(model: Any, criterion: str, *, prompts: str | None = None, dataset: str | None = None,
          side_prompts: str | None = None, n_side: int = 64, say: Progress | None = None) -> Setup:
    """Load the model, compile the criterion, choose how it is measured and the side-effect prompts."""
    from interp_lab.criteria.compile import compile_criterion, scorer_for
    from interp_lab.interventions.side import unrelated_prompts

    say = say or (lambda stage, done=0, total=None: None)
    lm = load(model, say)
    say("compiling the criterion", 0, None)
    compiled = compile_criterion(criterion, model=lm, prompts=prompts, dataset=dataset, progress=say)
    scorer = scorer_for(compiled, lm)
    unrelated = unrelated_prompts(n_side, {r["text"] for r in compiled.rows}, side_prompts)
    return Setup(lm, compiled, scorer, unrelated)


@dataclass
class Candidates:
    setup: Setup
    matrix: RecordMatrix
    directions: list[Any]  # interventions.contrast.Direction
    forced: list[str]  # directions chosen on calibration prompts: tested whatever their discovery rank
    layers: list[int]
    acts_cached: bool
    acts_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    latents: Any = None  # sae.space.LatentSpace of the SAE whose latents are candidates

    def selectable(self) -> np.ndarray:
        """Columns the ranker may choose on discovery rows: not the directions fitted on those rows."""
        return np.array([kind_of(f) != "D" for f in self.matrix.feature_ids.tolist()], dtype=bool)

    def direction_vectors(self) -> dict[str, tuple[str, np.ndarray]]:
        return {d.feature_id: (d.hook, d.vector) for d in self.directions}

    def latent_spaces(self) -> dict[int, Any] | None:
        return None if self.latents is None else {self.latents.layer: self.latents}

    def targets(self, feature_ids: Sequence[str]) -> list[Any]:
        """``interventions.features.Target`` for any candidate id (units, directions, latents)."""
        from interp_lab.interventions.features import resolve_targets

        return resolve_targets(self.setup.lm, list(feature_ids), self.direction_vectors(), self.latent_spaces())


class _DecoderRows(Mapping):
    """``{feature_id: decoder vector}``: the given ones, and an SAE's decoder rows made into lists only
    for the ids asked for (the cards), not for every latent."""

    def __init__(self, given: dict[str, list[float]], space: Any = None):
        self.given = given
        self.space = space
        self.latents = {} if space is None else {space.feature_id(i): i for i in range(space.size)}

    def __getitem__(self, fid: str) -> list[float]:
        if fid in self.given:
            return self.given[fid]
        return [round(float(v), 6) for v in self.space.write([self.latents[fid]])[0]]

    def __iter__(self):
        yield from self.given
        yield from (f for f in self.latents if f not in self.given)

    def __len__(self) -> int:
        return len(self.given) + len(self.latents)


def _acts_key(lm, hooks: Sequence[str], texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{ACTS_VERSION}\0{lm.name}\0{lm.revision}\0{lm.dtype}\0".encode())
    h.update("\0".join(hooks).encode())
    for t in texts:
        h.update(b"\0" + t.encode())
    return h.hexdigest()[:32]


def last_token_acts(lm, rows: list[dict[str, Any]], hooks: list[str], batch_size: int, cache: bool = True
                    ) -> tuple[dict[str, np.ndarray], bool, Path | None]:
    """{hook: [n_rows, d]} float32 at each prompt's last token (row order), read from or written to the cache."""
    from safetensors.numpy import load_file, save

    from interp_lab.interventions.run import split_set
    from interp_lab.io.atomic import write_bytes_atomic
    from interp_lab.io.cache import cache_dir

    path = cache_dir() / "activations" / f"{_acts_key(lm, hooks, [r['text'] for r in rows])}.safetensors"
    if cache and path.exists():
        got = load_file(str(path))
        if set(got) == set(hooks) and all(len(v) == len(rows) for v in got.values()):
            return got, True, path
    out: dict[str, np.ndarray] = {}
    for s in ("discovery", "calibration", "heldout"):
        idx = np.array([i for i, r in enumerate(rows) if r["split"] == s], dtype=np.int64)
        if not len(idx):
            continue
        part = split_set(lm, [rows[i] for i in idx], batch_size).last_token_acts(hooks)
        for h in hooks:
            if h not in out:
                out[h] = np.zeros((len(rows), part[h].shape[1]), dtype=np.float32)
            out[h][idx] = part[h]
    if cache:
        write_bytes_atomic(path, save(out))
    return out, False, (path if cache else None)


def collect(s: Setup, *, layers: str | None = "all", units: str = "NRD", batch_size: int = 64, cache: bool = True,
            sae: str | None = None, say: Progress | None = None) -> Candidates:
    """Every neuron, residual dimension and contrast direction of the chosen layers, and with ``sae`` every
    latent of that SAE (units ``F``, at its own hook and layer), as activation records."""
    from interp_lab.harvest.records import parse_layers
    from interp_lab.interventions.contrast import best_direction, fit_directions
    say = say or (lambda stage, done=0, total=None: None)
    bad = set(units) - set("NRDF")
    if bad or not units:
        raise UsageError(f"--units takes letters of N (neurons), R (residual dimensions), D (directions), "
                         f"F (SAE latents), not {units!r}")
    if "F" in units and sae is None:
        raise UsageError("--units F (SAE latents) needs --sae")
    lm, rows = s.lm, s.compiled.rows
    space = None
    if sae is not None:
        from interp_lab.sae.space import latent_space

        space = latent_space(sae)
        if space.layer >= lm.n_layers:
            raise UsageError(f"{sae}: the SAE reads {space.hook}; {lm.name} has layers 0..{lm.n_layers - 1}")
        width = _hook_width(lm, space.hook)
        if width != space.sae.cfg.d_in:
            raise UsageError(f"{sae}: the SAE takes d_in {space.sae.cfg.d_in}; {space.hook} of {lm.name} has "
                             f"width {width}")
    chosen = parse_layers(layers, lm.n_layers) if set(units) - {"F"} else []
    hooks = sorted({f"blocks.{i}.{UNITS[u]}" for i in chosen for u in units if u in UNITS}
                   | ({f"blocks.{i}.hook_resid_post" for i in chosen} if "D" in units else set())
                   | ({space.hook} if space is not None else set()))
    say(f"last-token activations at {len(hooks)} hook points", 0, None)
    acts, was_cached, path = last_token_acts(lm, rows, hooks, batch_size, cache)
    split = np.array([SPLIT_CODES[r["split"]] for r in rows], dtype=np.int8)
    scores = np.array([r["criterion_score"] for r in rows], dtype=np.float64)
    directions, forced = [], []
    if "D" in units:
        say("contrast directions", 0, None)
        from interp_lab.evidence.stats import class_cut

        cut = class_cut(scores[split == SPLIT_CODES["discovery"]])
        by_layer = {i: {name: acts[f"blocks.{i}.hook_resid_post"][split == code]
                        for name, code in SPLIT_CODES.items()} for i in chosen}
        positive = {name: scores[split == code] > cut for name, code in SPLIT_CODES.items()}
        directions = fit_directions(by_layer, positive)
        forced = sorted({best_direction(directions, m).feature_id for m in ("mean_difference", "logistic_probe")})
    # per layer D, F, N, R blocks with ascending indices: already the natural order of feature ids
    blocks, names, hook_of = [], [], {}
    decoders: dict[str, Any] = {d.feature_id: [round(float(v), 6) for v in d.vector] for d in directions}
    latent_layer = None if space is None else space.layer
    for i in sorted(set(chosen) | ({latent_layer} if space is not None else set())):
        mine = [d for d in directions if d.layer == i]
        if mine:
            blocks.append(acts[f"blocks.{i}.hook_resid_post"] @ np.stack([d.vector for d in mine], 1))
            names += [d.feature_id for d in mine]
            hook_of.update((d.feature_id, d.hook) for d in mine)
        if i == latent_layer:
            import torch

            say("encoding SAE latents", 0, None)
            blocks.append(space.values(torch.from_numpy(acts[space.hook]), range(space.size)).numpy())
            ids = [space.feature_id(j) for j in range(space.size)]
            names += ids
            hook_of.update(dict.fromkeys(ids, space.hook))
        if i not in chosen:
            continue
        for u in "NR":
            if u in units:
                hook = f"blocks.{i}.{UNITS[u]}"
                a = acts[hook]
                blocks.append(a)
                ids = [format_id(i, u, j) for j in range(a.shape[1])]
                names += ids
                hook_of.update(dict.fromkeys(ids, hook))
    dense = np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)
    feature_ids = np.array(names, dtype=object)
    n, F = dense.shape
    X = Compressed(dense.ravel(), np.tile(np.arange(F, dtype=np.int32), n),
                   np.arange(n + 1, dtype=np.int64) * F, (n, F), "csr")
    del dense
    X.eliminate_zeros()
    n_tokens = np.array([len(lm.tokenizer(r["text"], add_special_tokens=True)["input_ids"]) for r in rows],
                        dtype=np.float64)
    labels = {d.feature_id: f"contrast direction ({d.method.replace('_', ' ')}) at {d.hook}, last token"
              for d in directions}
    m = RecordMatrix(
        path=f"hf:{lm.name}",
        X=X,
        feature_ids=feature_ids,
        prompt_ids=np.array([r["prompt_id"] for r in rows], dtype=object),
        token_index=np.full(n, -1, dtype=np.int64),
        scores=scores,
        splits=split,
        texts=pa.chunked_array([pa.array([r["text"] for r in rows], pa.string())]),
        tokens=None,
        covariates={"prompt_tokens": n_tokens, **prompt_covariates(rows)},
        models=[lm.name],
        sources=["hf"],
        hooks=hooks,
        feature_hooks=hook_of,
        feature_labels=labels,
        feature_layers={fid: layer_of(fid) for fid in feature_ids},
        feature_decoders=decoders if space is None else _DecoderRows(decoders, space),
        reader="hf",
    )
    info = {"layers": chosen, "units": units, "hooks": len(hooks), "features": F, "prompts": n,
            "activations": "read from the cache" if was_cached else "computed", "position": "last prompt token"}
    if space is not None:
        info["sae"] = {"path": str(sae), "hook": space.hook, "architecture": space.sae.architecture,
                       "d_sae": space.size}
    return Candidates(s, m, directions, forced, chosen, was_cached, path, info, space)


def _hook_width(lm, hook: str) -> int:
    from interp_lab.models.hooked import hook_widths

    return hook_widths(lm, [hook])[hook]


def kinds_for(feature_id: str, neuron_kinds: Sequence[str], direction_kinds: Sequence[str],
              latent_kinds: Sequence[str] = ()) -> tuple[str, ...]:
    """Which interventions test a candidate: directions and SAE latents get their own lists, units theirs."""
    kind = kind_of(feature_id)
    if kind == "D":
        return tuple(direction_kinds)
    return tuple(latent_kinds if kind == "F" else neuron_kinds)


def validate(c: Candidates, feature_ids: Sequence[str], settings, *, neuron_kinds: Sequence[str],
             direction_kinds: Sequence[str], latent_kinds: Sequence[str] = (), cache: bool = True,
             say: Progress | None = None, claims: dict[str, int] | None = None):
    """Interventions with controls on the candidates (interventions.run), each with its own kinds; ``claims``
    ({feature_id: +1 | -1}, default: each feature's discovery direction) orient the steering gains."""
    from interp_lab.interventions.run import run_interventions

    return run_interventions(c.setup.lm, c.setup.compiled.rows, c.targets(feature_ids), c.setup.scorer,
                             c.setup.unrelated, criterion=c.setup.compiled.spec.criterion, settings=settings,
                             progress=say,
                             kinds_for=lambda t: kinds_for(t.feature_id, neuron_kinds, direction_kinds, latent_kinds),
                             cache=cache, claims=claims)
