"""Causal edits on a model with the controls of evidence.md rule 7, written as intervention records.

For each target feature and intervention kind:

- the edit applies at the prompt's last token (and at every continuation or
  generated token after it), on held-out prompts; everything before the last
  token is computed once per batch and shared by all edits;
- steering strengths (units: the median norm of the hook's activation at the
  last token of discovery prompts) are chosen on calibration prompts (the
  smallest reaching 90% of the largest gain), and the chosen strength is what
  runs on held-out prompts;
- controls run in the same call, each linked to its feature with
  ``control_for``: for steering, norm-matched random directions at the same
  strength; for other edits of a neuron, residual dimension or SAE latent,
  random features of the same space matched on activation standard deviation
  (dense units) or firing frequency (sparse latents) within a factor of 2;
  for other edits of a direction, random directions whose projection varies
  as much (standard deviation within a factor of 2); and a placebo (the same
  hook machinery adding zero);
- side effects are KL(clean || edited) of the next-token distribution on
  unrelated prompts, one per held-out row while they last.

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
from interp_lab.evidence.stats import class_cut, significant
from interp_lab.interventions.batches import CachedBatch, PromptSet
from interp_lab.interventions.features import FeatureSpace, Target, matched_directions, random_directions
from interp_lab.interventions.scorers import scores
from interp_lab.interventions.settings import InterventionSettings
from interp_lab.models.hooked import Edit

Progress = Callable[..., None]
KNEE = 0.9  # steering strength: the smallest reaching this fraction of the largest calibration gain


@dataclass
class Prompts:
    """The scored prompts of a compiled criterion, by split."""

    rows: list[dict[str, Any]]

    def split(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("split") == name]


class _Reference:
    """Statistics of features on the discovery prompts' last token: the values edits set them to."""

    def __init__(self, acts: dict[str, np.ndarray], positive: np.ndarray):
        self.acts = acts  # {hook: [n_ref, d]}
        self.positive = positive
        self.median_norm = {h: float(np.median(np.linalg.norm(a, axis=1))) for h, a in acts.items()}
        self._cache: dict[int, tuple[FeatureSpace, np.ndarray]] = {}  # the space is kept so its id stays its own

    def values(self, space: FeatureSpace) -> np.ndarray:
        """[n_ref, size] values of every feature of ``space``."""
        if id(space) not in self._cache:
            x = torch.from_numpy(self.acts[space.hook])
            self._cache[id(space)] = (space, space.values(x, range(space.size)).float().numpy())
        return self._cache[id(space)][1]

    def spread(self, space: FeatureSpace) -> np.ndarray:
        v = self.values(space)
        return v.std(0) if space.dense else (v > 0).mean(0)


@dataclass
class EditPlan:
    """One edit of one feature (target or control): what runs and how its records are labelled."""

    feature_id: str
    space: FeatureSpace
    index: int
    kind: str
    strength: float | None = None
    control_type: str | None = None
    matched_on: str | None = None

    def key(self) -> tuple:
        return (self.space.hook, self.feature_id, self.kind, self.strength)


def _set_edit(space: FeatureSpace, index: int, value: torch.Tensor | float) -> Callable:
    w = space.write([index])[0]

    def f(view: torch.Tensor) -> torch.Tensor:
        cur = space.values(view, [index])[..., 0]
        v = value[:, None] if isinstance(value, torch.Tensor) else value
        return view + (v - cur)[..., None] * w.to(view.dtype)

    return f


def _add_edit(vector: torch.Tensor) -> Callable:
    return lambda view: view + vector.to(view.dtype)


class Experiment:
    """Runs edit plans on held-out (and calibration) prompts and writes their records."""

    def __init__(self, lm, prompts: Prompts, scorer, unrelated: Sequence[str], settings: InterventionSettings,
                 hooks: Sequence[str], *, criterion: str, progress: Progress | None = None):
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
        ref_scores = np.array([r["criterion_score"] for r in ref_rows], dtype=float)
        cut = class_cut(ref_scores)
        self.ref_stats = _Reference(self.ref.last_token_acts(sorted(set(hooks))), ref_scores > cut)
        self.say("clean scores", 0, None)
        self.base_held = scores(self.held, scorer)
        self.base_calib = scores(self.calib, scorer)
        self.base_side = self.side.next_token_logprobs() if self.side else None
        ref_pos = np.flatnonzero(self.ref_stats.positive)
        # patch: held-out negatives, each given the value of a positive discovery prompt
        held_scores = np.array([r["criterion_score"] for r in held_rows], dtype=float)
        self.held_rows, self.cut = held_rows, cut
        self.patch_rows = np.flatnonzero(held_scores <= cut)
        self.patch_source = ref_pos[np.arange(len(self.patch_rows)) % max(len(ref_pos), 1)]
        self.side_source = ref_pos[np.arange(n_side) % max(len(ref_pos), 1)]
        self._results: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}
        self._random: dict[str, FeatureSpace] = {}  # random directions per hook, shared by every target there
        self.runs = 0

    # ------------------------------------------------------------------ edits

    def _value(self, plan: EditPlan, which: str) -> torch.Tensor | float:
        v = self.ref_stats.values(plan.space)[:, plan.index]
        if plan.kind == "ablate":
            return 0.0
        if plan.kind == "mean_ablate":
            return float(v.mean())
        if plan.kind == "clamp_up":
            return float(np.quantile(v, 0.99))
        if plan.kind == "clamp_down":
            return float(np.quantile(v, 0.01))
        if plan.kind == "patch":
            src = self.patch_source if which == "held" else self.side_source
            return torch.from_numpy(v[src].astype(np.float32))
        raise AssertionError(plan.kind)

    def _edits_for(self, plan: EditPlan, which: str):
        """``edits_for(batch)`` for the held-out (or patch), calibration or side-effect prompts."""
        hook = plan.space.hook
        if plan.control_type == "placebo":
            zero = torch.zeros(1)
            return lambda b: [Edit(hook, "apply", _add_edit(zero))]
        if plan.kind == "steer":
            w = plan.space.write([plan.index])[0]
            vec = w / w.norm() * (plan.strength * self.ref_stats.median_norm[hook])
            return lambda b: [Edit(hook, "apply", _add_edit(vec))]
        value = self._value(plan, which)
        if isinstance(value, torch.Tensor):
            def per_batch(b: CachedBatch):
                return [Edit(hook, "apply", _set_edit(plan.space, plan.index, value[torch.as_tensor(b.rows)]))]
            return per_batch
        fn = _set_edit(plan.space, plan.index, value)
        return lambda b: [Edit(hook, "apply", fn)]

    def measure(self, plan: EditPlan) -> tuple[np.ndarray, np.ndarray | None]:
        """Held-out scores under the edit (patch: its rows only) and side-effect KL per unrelated prompt."""
        key = plan.key()
        if key in self._results:
            return self._results[key]
        held = _subset(self.held, self.patch_rows) if plan.kind == "patch" else self.held
        edited = scores(held, self.scorer, self._edits_for(plan, "held"))
        side = self._side_kl(plan) if self.side is not None else None
        self.runs += 1
        self._results[key] = (edited, side)
        return edited, side

    def calibrate(self, target: Target) -> tuple[float, dict[str, Any]]:
        """The steering strength: the smallest whose mean calibration gain reaches ``knee`` (90%) of the
        largest gain over the grid, so that steering is not pushed past the point where more strength buys
        little but side effects. Gains count in the direction of the smallest strength's gain (where the
        edit is still nearly linear): far along a direction the model breaks and the score collapses
        whatever the feature does, a large change that is not the feature's effect. Returns the strength
        with the gain and side effect per strength."""
        gains: dict[str, float] = {}
        sides: dict[str, float] = {}
        for s in self.settings.strengths:
            plan = EditPlan(target.feature_id, target.space, target.index, "steer", s)
            got = scores(self.calib, self.scorer, self._edits_for(plan, "calib"))
            gains[f"{s:g}"] = significant((got - self.base_calib).mean(), 7)
            if self.side is not None:
                sides[f"{s:g}"] = significant(self._side_kl(plan).mean(), 7)
        grid = sorted(self.settings.strengths)
        sign = -1.0 if gains[f"{grid[0]:g}"] < 0 else 1.0
        best = max(sign * g for g in gains.values())
        chosen = min(s for s in grid if sign * gains[f"{s:g}"] >= KNEE * best - 1e-12)
        return float(chosen), {"gains": gains, "side_effects": sides}

    def _side_kl(self, plan: EditPlan) -> np.ndarray:
        lp = self.side.next_token_logprobs(self._edits_for(plan, "side"))
        return (self.base_side.exp() * (self.base_side - lp)).sum(-1).clamp(min=0).numpy()

    # ------------------------------------------------------------------ controls

    def controls(self, target: Target, kind: str, strength: float | None) -> list[EditPlan]:
        """Random features matched to ``target`` (or random directions), and the placebo."""
        n, hook, space, layer = self.settings.n_controls, target.hook, target.space, target.space.layer
        out: list[EditPlan] = []
        f = self.settings.match_factor
        if kind == "steer":  # norm-matched random directions, steered at the same strength
            if hook not in self._random:
                d = int(self.ref_stats.acts[hook].shape[1])
                self._random[hook] = random_directions(hook, layer, d, n, _seed(self.settings.seed, hook),
                                                       f"L{layer}:rdir")
            rnd = self._random[hook]
            out += [EditPlan(rnd.feature_id(k), rnd, k, kind, strength, "random_direction",
                             "norm (unit directions at the same strength)") for k in range(rnd.size)]
        elif space.kind == "D" or space.size <= 1:  # a direction: random directions varying as much as it does
            mine = float(self.ref_stats.spread(space)[target.index])
            rnd = matched_directions(hook, layer, self.ref_stats.acts[hook], mine, n,
                                     _seed(self.settings.seed, target.feature_id), f,
                                     f"L{layer}:mdir{_short(target.feature_id)}_")
            if rnd is not None:
                out += [EditPlan(rnd.feature_id(k), rnd, k, kind, strength, "random_direction",
                                 f"projection standard deviation within a factor of {f:g}") for k in range(rnd.size)]
        else:
            spread = self.ref_stats.spread(space)
            mine = spread[target.index]
            ok = np.flatnonzero((spread >= mine / f) & (spread <= mine * f))
            ok = ok[ok != target.index]
            rng = np.random.default_rng(_seed(self.settings.seed, target.feature_id))
            pick = np.sort(rng.choice(ok, size=min(n, len(ok)), replace=False)) if len(ok) else []
            what = "activation standard deviation" if space.dense else "firing frequency"
            out += [EditPlan(space.feature_id(int(j)), space, int(j), kind, strength, "random_feature",
                             f"{what} within a factor of {f:g}") for j in pick]
        out.append(EditPlan("placebo", space, target.index, kind, strength, "placebo", None))
        return out

    # ------------------------------------------------------------------ records

    def records(self, plan: EditPlan, control_for: str | None, extra: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
        edited, side = self.measure(plan)
        rows = self.patch_rows if plan.kind == "patch" else np.arange(len(self.held))
        base = self.base_held[rows]
        meta_common: dict[str, Any] = {"score_kind": self.scorer.kind, "source": "interp-lab", "hook": plan.space.hook,
                                       "positions": "last prompt token onward", **(extra or {})}
        if plan.kind == "steer":
            meta_common["units"] = "median activation norm at the hook (discovery prompts, last token)"
            meta_common["median_norm"] = round(self.ref_stats.median_norm[plan.space.hook], 6)
        if plan.control_type:
            meta_common["control_type"] = plan.control_type
            meta_common["control_for"] = control_for
            if plan.matched_on:
                meta_common["matched_on"] = plan.matched_on
        out = []
        for k, (r, b, e) in enumerate(zip(rows, base, edited)):
            meta = dict(meta_common)
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


def _short(feature_id: str) -> str:
    return hashlib.sha256(feature_id.encode()).hexdigest()[:6]


def _seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


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
                      cache: bool = False) -> InterventionRun:
    """Intervention records for ``targets`` (each kind of ``settings``, or ``kinds_for(target)``, with
    controls) on held-out prompts. With ``cache``, each target's records are kept on disk under a key of
    everything they depend on (model revision, prompts, scorer, settings, the feature's write vector), so
    a rerun computes only what is new; the prompt prefixes are not even computed when nothing is."""
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
        path = _cache_path(base, t, kinds) if cache else None
        if path is not None and path.exists():
            got = json.loads(gzip.decompress(path.read_bytes()))
            recs += got["records"]
            strengths.update(got["strengths"])
            done += len(kinds)
            cached += 1
            continue
        if ex is None:
            ex = Experiment(lm, prompts, scorer, unrelated, settings, hooks, criterion=criterion, progress=say)
        mine: list[dict[str, Any]] = []
        mine_strength: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            say("interventions", done, total)
            strength = None
            if kind == "steer":
                strength, sweep = ex.calibrate(t)
                mine_strength[t.feature_id] = {"chosen": strength, "calibration_gains": sweep["gains"],
                                               "calibration_side_effects": sweep["side_effects"],
                                               "rule": f"smallest strength reaching {KNEE:.0%} of the largest gain "
                                                       "(signed as the smallest strength's gain)",
                                               "calibration_prompts": len(ex.calib)}
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


CACHE_VERSION = "interventions-v3"  # v2: scores to 7 significant digits; v3: calibration gains signed


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


def _cache_path(base: str, target: Target, kinds: Sequence[str]):
    from interp_lab.io.cache import cache_dir

    h = hashlib.sha256(f"{base}\0{target.hook}\0{target.feature_id}\0{','.join(kinds)}\0"
                       f"{getattr(target.space, 'fingerprint', '')}".encode())
    h.update(target.space.write([target.index])[0].numpy().astype(np.float32).tobytes())
    return cache_dir() / "interventions" / f"{h.hexdigest()[:32]}.json.gz"
