"""``steer``: a prompt's greedy continuation with and without a feature's write vector (or a saved direction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_lab.api.interventions import model_option, sae_latents
from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.providers.hf import load
from interp_lab.schemas.command import Progress, option


@dataclass(kw_only=True)
class SteerOptions:
    """``steer``'s options: the prompt, what is added where and how strongly, and how much is shown."""

    model: Any = model_option()
    prompt: str = option(help="The text continued, greedily.")
    feature: str | None = option(None, "A neuron, residual dimension or (with --sae) SAE latent (L12:N1043, "
                                       "L15:F2210).")
    sae: Path | None = option(None, "SAE checkpoint whose latents the F ids name.")
    direction: str | None = option(None, "directions.safetensors[:FEATURE_ID].")
    strength: float = option(1.0, "Units: the median activation norm at the hook.")
    tokens: int = option(20, "Greedy tokens to generate.", flag="--max-new-tokens", deprecated=("--tokens",),
                         param="tokens", min=1)
    top: int = option(10, "Next tokens shown: the top-k by probability.", flag="--top-k", deprecated=("--top",),
                      param="top", min=1)


@dataclass
class SteerResult:
    """The continuations and next-token distributions of a prompt, without and with the edit."""

    prompt: str
    hook: str
    feature: str
    strength: float
    unit: float  # the median activation norm at the hook over the prompt's tokens (first excluded)
    baseline: str
    steered: str
    baseline_top: list[tuple[str, float]]
    steered_top: list[tuple[str, float]]


@command("steer", options=SteerOptions, result=SteerResult, group="inspect", positional=("model", "prompt"),
         help="Baseline vs steered continuation, and the top next tokens with their probabilities.")
def steer(o: SteerOptions, progress: Progress) -> SteerResult:
    """Greedy continuation of ``prompt`` with and without a feature's write vector (or a saved direction)
    added from the last prompt token on, at ``strength`` x the median activation norm at its hook."""
    import torch

    from interp_lab.interventions.batches import PromptSet
    from interp_lab.interventions.contrast import load_directions
    from interp_lab.interventions.features import resolve_targets
    from interp_lab.models.hooked import Edit, run

    if (o.feature is None) == (o.direction is None):
        raise UsageError("give exactly one of --feature and --direction")
    lm = load(o.model, progress)
    if o.direction is not None:
        direction = o.direction
        file, _, key = direction.partition(":") if not Path(direction).exists() else (direction, "", "")
        dirs = load_directions(file)
        key = key or (next(iter(dirs)) if len(dirs) == 1 else "")
        if key not in dirs:
            raise UsageError(f"{file} holds {', '.join(dirs)}: name one as {file}:KEY")
        target = resolve_targets(lm, [key], dirs)[0]
    else:
        target = resolve_targets(lm, [o.feature], latent_spaces=sae_latents(o.sae))[0]
    enc = lm.tokenizer([o.prompt], return_tensors="pt")
    acts = run(lm.model, dict(enc), [target.hook], logits=False, flat=True).acts[target.hook][0].float()
    norms = acts.norm(dim=-1)
    unit = float((norms[1:] if len(norms) > 1 else norms).median())
    w = target.space.write([target.index])[0]
    vec = w / w.norm() * (o.strength * unit)
    edits = [Edit(target.hook, "apply", lambda v: v + vec.to(v.dtype))]
    ps = PromptSet(lm, [o.prompt], 1)
    b = ps.batches[0]
    out = {}
    for name, e in (("baseline", []), ("steered", edits)):
        ids = ps.greedy(b, o.tokens, e)[0]
        lp = ps.next_token_logprobs(lambda _b, e=e: e)[0]
        p, i = torch.topk(lp.exp(), o.top)
        out[name] = (lm.tokenizer.decode(ids, skip_special_tokens=True),
                     [(lm.tokenizer.decode([int(t)]), round(float(q), 6)) for q, t in zip(p, i)])
    return SteerResult(o.prompt, target.hook, target.feature_id, o.strength, unit, out["baseline"][0],
                       out["steered"][0], out["baseline"][1], out["steered"][1])
