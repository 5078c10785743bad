"""Causal edits on a model with the controls of evidence.md rule 7, written as intervention records.

For each target feature and intervention kind:

- the edit applies at the prompt's last token (and at every continuation or
  generated token after it), on held-out prompts; everything before the last
  token is computed once per batch and shared by all edits;
- steering strengths (units: the median norm of the hook's activation at the
  last token of discovery prompts) are chosen on calibration prompts under a
  side-effect budget: the best gain in the feature's discovery direction among
  the strengths whose mean next-token KL on unrelated prompts is at most
  ``kl_budget`` (the grid extended downwards by halving when even its smallest
  strength costs more); the dose-response (gain and KL at every strength tried,
  the feature's and its controls' median) is returned, and only the chosen
  strength runs on held-out prompts;
- controls run in the same call, each linked to its feature with
  ``control_for`` (``interventions.controls`` has the numbers): for a set-edit
  (ablate, mean_ablate, clamp, patch) of a neuron, residual dimension or SAE
  latent, other units of the same space whose realised edit (RMS over the
  discovery prompts of the change to the residual stream at the edited
  position) is within ``match_tolerance`` of the feature's; for a set-edit of a
  direction, random directions drawn from the activation distribution at the
  hook, matched the same way; for steering, random directions from the
  activation distribution, each at the strength (searched) whose mean
  side-effect KL is within ``kl_tolerance`` of the feature's; and for contrast
  directions (``D0`` difference of means, ``D1`` logistic probe) a second
  family, the same method refitted on permuted discovery labels, edited the same
  way (at the feature's strength when steering). A pool too small for
  ``n_controls`` widens its tolerance and says so in the records;
- side effects are KL(clean || edited) of the next-token distribution on
  unrelated prompts, one per held-out row while they last.

Every record carries ``metadata.edit_norm`` (its realised edit at the last
prompt token, in the residual stream's units) and ``metadata.positive`` (the
held-out prompt's class by the discovery class cut).

Kinds: ``ablate`` (set to zero; for a direction, project it out),
``mean_ablate`` (set to its mean on discovery prompts), ``clamp_up`` /
``clamp_down`` (set to its 99th / 1st percentile there), ``steer`` (add the
unit write vector times strength x median norm), ``patch`` (set to its value
on a positive discovery prompt, on the held-out negatives).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interp_lab.errors import UsageError
from interp_lab.evidence.stats import auroc, class_cut, is_binary, rankdata, significant
from interp_lab.interventions import controls as ctl
from interp_lab.interventions import steering
from interp_lab.interventions.batches import CachedBatch, PromptSet, scores
from interp_lab.interventions.features import DirectionSpace, FeatureSpace, Target, write_norms
from interp_lab.interventions.plan import EditPlan, add_edit, set_edit
from interp_lab.interventions.settings import InterventionSettings
from interp_lab.models.hooked import Edit

Progress = Callable[..., None]


@dataclass
class Prompts:
    """The scored prompts of a compiled criterion, by split."""

    rows: list[dict[str, Any]]

    def split(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("split") == name]


class _Reference:
    """Statistics of features on the discovery prompts' last token: the values edits set them to, and the
    realised size of each edit there (what controls are matched on)."""

    def __init__(self, lm, acts: dict[str, np.ndarray], positive: np.ndarray):
        self.lm = lm
        self.acts = acts  # {hook: [n_ref, d]}
        self.positive = positive
        self.median_norm = {h: float(np.median(np.linalg.norm(a, axis=1))) for h, a in acts.items()}
        self._cache: dict[tuple, tuple[FeatureSpace, Any]] = {}  # the space is kept so its id stays its own

    def _cached(self, space: FeatureSpace, what: str, make: Callable[[], Any]) -> Any:
        key = (id(space), what)
        if key not in self._cache:
            self._cache[key] = (space, make())
        return self._cache[key][1]

    def values(self, space: FeatureSpace) -> np.ndarray:
        """[n_ref, size] values of every feature of ``space``."""
        return self._cached(space, "values", lambda: space.values(torch.from_numpy(self.acts[space.hook]),
                                                                  range(space.size)).float().numpy())

    def norms(self, space: FeatureSpace) -> np.ndarray:
        """[size] residual-stream norm of each feature's write vector."""
        return self._cached(space, "norms", lambda: write_norms(self.lm, space))

    def edit_rms(self, space: FeatureSpace, kind: str) -> np.ndarray:
        """[size] RMS over discovery prompts of each feature's realised edit of ``kind``."""
        return self._cached(space, f"rms:{kind}", lambda: ctl.edit_rms(self.values(space), kind, self.norms(space),
                                                                        self.positive))

    def direction_rms(self, hook: str, kind: str, vectors: np.ndarray) -> np.ndarray:
        """[k] the same for unit directions ``vectors`` [k, d] at a residual hook (write norm 1)."""
        return ctl.edit_rms(self.acts[hook] @ vectors.T, kind, np.ones(len(vectors)), self.positive)


class Experiment:
    """Runs edit plans on held-out (and calibration) prompts and writes their records."""

    def __init__(self, lm, prompts: Prompts, scorer, unrelated: Sequence[str], settings: InterventionSettings,
                 hooks: Sequence[str], *, criterion: str, progress: Progress | None = None,
                 claims: dict[str, int] | None = None):
        self.lm, self.scorer, self.settings, self.criterion = lm, scorer, settings, criterion
        self.say = progress or (lambda stage, done=0, total=None: None)
        bs = settings.batch_size
        ref_rows, calib_rows, held_rows = (prompts.split(s) for s in ("discovery", "calibration", "heldout"))
        for name, rows in (("discovery", ref_rows), ("calibration", calib_rows), ("heldout", held_rows)):
            if not rows:
                raise UsageError(f"interventions need {name} prompts; the prompt set has none")
        self.say("caching prompt prefixes", 0, None)
        self.ref, self.calib, self.held = (split_set(lm, rows, bs) for rows in (ref_rows, calib_rows, held_rows))
        n_side = min(settings.side_prompts, len(held_rows))
        side_texts = list(unrelated)[:n_side]
        self.side = PromptSet.shared(lm, side_texts, bs) if side_texts else None
        self.ref_scores = np.array([r["criterion_score"] for r in ref_rows], dtype=float)
        cut = class_cut(self.ref_scores)
        hooks = sorted(set(hooks))
        self.ref_stats = _Reference(lm, self.ref.last_token_acts(hooks), self.ref_scores > cut)
        self.held_acts = self.held.last_token_acts(hooks)  # clean values: what each edit changes, per row
        self.say("clean scores", 0, None)
        self.base_held = scores(self.held, scorer)
        self.base_calib = scores(self.calib, scorer)
        self.base_side = self.side.next_token_logprobs() if self.side else None
        ref_pos = np.flatnonzero(self.ref_stats.positive)
        # patch: held-out negatives, each given the value of a positive discovery prompt
        held_scores = np.array([r["criterion_score"] for r in held_rows], dtype=float)
        self.held_rows, self.cut = held_rows, cut
        self.held_positive = held_scores > cut
        self.patch_rows = np.flatnonzero(held_scores <= cut)
        self.patch_source = ref_pos[np.arange(len(self.patch_rows)) % max(len(ref_pos), 1)]
        self.side_source = ref_pos[np.arange(n_side) % max(len(ref_pos), 1)]
        self.claims = dict(claims or {})
        self._results: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}
        self._side: dict[tuple, np.ndarray] = {}  # side-effect KL per plan key (searches reuse them)
        self.calib_change: dict[tuple, float] = {}  # mean calibration change per steering plan
        self.steer_pools: dict[str, DirectionSpace] = {}  # steering controls per hook, shared by its targets
        self.permuted: dict[str, DirectionSpace] = {}  # label-permuted refits per direction
        self.runs = 0

    # ------------------------------------------------------------------ edits

    def _value(self, plan: EditPlan, which: str) -> torch.Tensor | float:
        v = self.ref_stats.values(plan.space)[:, plan.index]
        if plan.kind == "patch":
            src = self.patch_source if which == "held" else self.side_source
            return torch.from_numpy(v[src].astype(np.float32))
        return float(ctl.set_value(v[:, None], plan.kind)[0])

    def edits_for(self, plan: EditPlan, which: str):
        """``edits_for(batch)`` for the held-out (or patch), calibration or side-effect prompts."""
        hook = plan.space.hook
        if plan.kind == "steer":
            w = plan.space.write([plan.index])[0]
            vec = w / w.norm() * (plan.strength * self.ref_stats.median_norm[hook])
            return lambda b: [Edit(hook, "apply", add_edit(vec))]
        value = self._value(plan, which)
        if isinstance(value, torch.Tensor):
            def per_batch(b: CachedBatch):
                return [Edit(hook, "apply", set_edit(plan.space, plan.index, value[torch.as_tensor(b.rows)]))]
            return per_batch
        fn = set_edit(plan.space, plan.index, value)
        return lambda b: [Edit(hook, "apply", fn)]

    def edit_norms(self, plan: EditPlan) -> np.ndarray:
        """The realised edit per held-out row (patch: its rows): the L2 norm of the change to the residual
        stream at the last prompt token, |new value - clean value| x the write vector's residual norm."""
        norm = float(self.ref_stats.norms(plan.space)[plan.index])
        if plan.kind == "steer":
            w = float(plan.space.write([plan.index])[0].norm())
            size = plan.strength * self.ref_stats.median_norm[plan.space.hook] * norm / w
            return np.full(len(self.held), size)
        x = torch.from_numpy(self.held_acts[plan.space.hook])
        cur = plan.space.values(x, [plan.index])[:, 0].float().numpy().astype(np.float64)
        value = self._value(plan, "held")
        if plan.kind == "patch":
            return np.abs(value.numpy() - cur[self.patch_rows]) * norm
        return np.abs(value - cur) * norm

    def measure(self, plan: EditPlan) -> tuple[np.ndarray, np.ndarray | None]:
        """Held-out scores under the edit (patch: its rows only) and side-effect KL per unrelated prompt."""
        key = plan.key()
        if key in self._results:
            return self._results[key]
        held = _subset(self.held, self.patch_rows) if plan.kind == "patch" else self.held
        edited = scores(held, self.scorer, self.edits_for(plan, "held"))
        side = self.side_kl(plan) if self.side is not None else None
        self.runs += 1
        self._results[key] = (edited, side)
        return edited, side

    def side_kl(self, plan: EditPlan) -> np.ndarray:
        """KL(clean || edited) of the next token after each unrelated prompt."""
        key = plan.key()
        if key not in self._side:
            lp = self.side.next_token_logprobs(self.edits_for(plan, "side"))
            self._side[key] = (self.base_side.exp() * (self.base_side - lp)).sum(-1).clamp(min=0).numpy()
        return self._side[key]

    def claim(self, target: Target) -> int:
        """+1 when the feature promotes the criterion on discovery prompts, -1 when it suppresses it (the
        ranker's statistic: Somers' D for a binary criterion, Spearman's rho for a graded one), unless the
        caller said."""
        if target.feature_id not in self.claims:
            v = self.ref_stats.values(target.space)[:, target.index].astype(np.float64)
            y = self.ref_scores
            if is_binary(y):
                effect = 2 * auroc(v, y > 0.5) - 1
            else:
                rv, ry = rankdata(v) - (len(v) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
                effect = float(rv @ ry)
            self.claims[target.feature_id] = -1 if effect < 0 else 1
        return self.claims[target.feature_id]

    # ------------------------------------------------------------------ steering

    def calibrate(self, target: Target) -> tuple[float, dict[str, Any]]:
        """The steering strength under the side-effect budget, and its dose-response (``steering``)."""
        return steering.calibrate(self, target)

    # ------------------------------------------------------------------ controls

    def controls(self, target: Target, kind: str, strength: float | None) -> list[EditPlan]:
        """The target's controls for ``kind``: random ones matched on the realised edit (steering: on
        side-effect KL) and, for a contrast direction, label-permuted refits."""
        own = (steering.steer_controls(self, target, strength) if kind == "steer"
               else ctl.set_controls(self, target, kind))
        return own + ctl.permuted_controls(self, target, kind, strength)

    # ------------------------------------------------------------------ records

    def records(self, plan: EditPlan, control_for: str | None, extra: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
        edited, side = self.measure(plan)
        rows = self.patch_rows if plan.kind == "patch" else np.arange(len(self.held))
        base = self.base_held[rows]
        norms = self.edit_norms(plan)
        meta_common: dict[str, Any] = {"score_kind": self.scorer.kind, "source": "interp-lab", "hook": plan.space.hook,
                                       "positions": "last prompt token onward", **(extra or {})}
        if plan.kind == "steer":
            meta_common["units"] = "median activation norm at the hook (discovery prompts, last token)"
            meta_common["median_norm"] = round(self.ref_stats.median_norm[plan.space.hook], 6)
        if plan.control_type:
            meta_common["control_type"] = plan.control_type
            meta_common["control_for"] = control_for
            for name in ("matched_on", "match_tolerance", "tolerance_widened", "for_strength"):
                if getattr(plan, name) is not None or name in ("match_tolerance",):
                    meta_common[name] = getattr(plan, name)
        out = []
        for k, (r, b, e) in enumerate(zip(rows, base, edited)):
            meta = dict(meta_common)
            meta["edit_norm"] = significant(norms[k], 7)
            meta["positive"] = bool(self.held_positive[r])
            s_eff = None
            if side is not None and k < len(side):
                s_eff = significant(side[k], 7)
                meta["side_effect_prompt"] = self.side.prompt_ids[k]
            if plan.kind == "patch":
                meta["patched_from"] = self.ref.prompt_ids[self.patch_source[k]]
            out.append({"schema_version": "interp-lab.intervention_record.v1", "model": self.lm.name,
                        "feature_id": plan.feature_id, "intervention": plan.kind,
                        "strength": plan.strength, "criterion": self.criterion,
                        "prompt_id": self.held.prompt_ids[r], "split": "heldout",
                        "baseline_score": significant(b, 7), "intervention_score": significant(e, 7),
                        "side_effect_score": s_eff, "metadata": meta})
        return out


def split_set(lm, rows: Sequence[dict[str, Any]], batch_size: int) -> PromptSet:
    """The (shared) prompt set of some prompt rows."""
    return PromptSet.shared(lm, [r["text"] for r in rows], batch_size, [r["prompt_id"] for r in rows])


def _subset(ps: PromptSet, rows: np.ndarray) -> PromptSet:
    """The same prompts restricted to ``rows`` (batches rebuilt; their prefixes computed once)."""
    return PromptSet.shared(ps.lm, [ps.texts[r] for r in rows], len(ps.batches[0].rows),
                            [ps.prompt_ids[r] for r in rows])


@dataclass
class InterventionRun:
    records: list[dict[str, Any]]
    strengths: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 0
    score_kind: str = ""
    prompts: dict[str, int] = field(default_factory=dict)
    cached_targets: int = 0  # targets whose records came from the cache


def run_interventions(lm, prompts: Prompts | Sequence[dict[str, Any]], targets: Sequence[Target], scorer,
                      unrelated: Sequence[str], *, criterion: str,
                      settings: InterventionSettings = InterventionSettings(),
                      progress: Progress | None = None,
                      kinds_for: Callable[[Target], Sequence[str]] | None = None,
                      cache: bool = False, claims: dict[str, int] | None = None) -> InterventionRun:
    """Intervention records for ``targets`` (each kind of ``settings``, or ``kinds_for(target)``, with
    controls) on held-out prompts. ``claims``: {feature_id: +1 | -1}, the direction steering gains are
    counted in (default: the sign of each feature's association with the criterion on discovery prompts).
    With ``cache``, each target's records are kept on disk under a key of everything they depend on (model
    revision, prompts, scorer, settings, the feature's write vector), so a rerun computes only what is new;
    the prompt prefixes are not even computed when nothing is."""
    prompts = prompts if isinstance(prompts, Prompts) else Prompts(list(prompts))
    say = progress or (lambda stage, done=0, total=None: None)
    hooks = sorted({t.hook for t in targets})
    ex: Experiment | None = None
    recs: list[dict[str, Any]] = []
    strengths: dict[str, dict[str, Any]] = {}
    work = [(t, tuple(kinds_for(t)) if kinds_for else settings.kinds) for t in targets]
    total = sum(len(k) for _, k in work)
    base = _run_key(lm, prompts, scorer, unrelated, settings, criterion) if cache else ""
    done = cached = 0
    for t, kinds in work:
        path = _cache_path(base, t, kinds, (claims or {}).get(t.feature_id)) if cache else None
        if path is not None and path.exists():
            got = json.loads(gzip.decompress(path.read_bytes()))
            recs += got["records"]
            strengths.update(got["strengths"])
            done += len(kinds)
            cached += 1
            continue
        if ex is None:
            ex = Experiment(lm, prompts, scorer, unrelated, settings, hooks, criterion=criterion, progress=say,
                            claims=claims)
        mine: list[dict[str, Any]] = []
        mine_strength: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            say("interventions", done, total)
            strength = None
            if kind == "steer":
                strength, mine_strength[t.feature_id] = ex.calibrate(t)
            plan = EditPlan(t.feature_id, t.space, t.index, kind, strength)
            extra = {"calibrated_on": "calibration"} if kind == "steer" else None
            mine += ex.records(plan, None, extra)
            for c in ex.controls(t, kind, strength):
                mine += ex.records(c, t.feature_id)
            done += 1
        if path is not None:
            from interp_lab.io.atomic import write_bytes_atomic

            blob = json.dumps({"records": mine, "strengths": mine_strength}).encode()
            write_bytes_atomic(path, gzip.compress(blob, mtime=0))
        recs += mine
        strengths.update(mine_strength)
    say("interventions", total, total)
    counts = {s: len(prompts.split(s)) for s in ("discovery", "calibration", "heldout")}
    counts["side_effect"] = min(settings.side_prompts, counts["heldout"], len(unrelated))
    return InterventionRun(recs, strengths, ex.runs if ex else 0, scorer.kind, counts, cached_targets=cached)


# v2: scores to 7 significant digits; v3: calibration gains signed; v4: controls matched on the realised edit
# (steering: on side-effect KL), label-permuted placebos, no zero-edit placebo, strength under a KL budget,
# edit_norm and positive on every record
CACHE_VERSION = "interventions-v4"


def _run_key(lm, prompts: Prompts, scorer, unrelated: Sequence[str], settings: InterventionSettings,
             criterion: str) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}\0{lm.name}\0{lm.revision}\0{lm.dtype}\0{criterion}\0".encode())
    h.update(json.dumps(settings.__dict__, sort_keys=True).encode())
    h.update(scorer.key().encode())
    for r in prompts.rows:
        h.update(f"\0{r['prompt_id']}\0{r['text']}\0{r['split']}\0{r['criterion_score']}".encode())
    for u in unrelated:
        h.update(b"\1" + u.encode())
    return h.hexdigest()


def _cache_path(base: str, target: Target, kinds: Sequence[str], claim: int | None = None):
    from interp_lab.io.cache import cache_dir

    h = hashlib.sha256(f"{base}\0{target.hook}\0{target.feature_id}\0{','.join(kinds)}\0{claim}\0"
                       f"{getattr(target.space, 'fingerprint', '')}".encode())
    h.update(target.space.write([target.index])[0].numpy().astype(np.float32).tobytes())
    return cache_dir() / "interventions" / f"{h.hexdigest()[:32]}.json.gz"
