"""Hook points with TransformerLens-style names, mapped onto each architecture's modules.

One table per family says where the blocks, the embedding and the final norm
live, and which module's output is exactly what the attention and MLP
sublayers add to the residual stream (Gemma 2/3 add a normalized output, so
theirs is the post-norm). Names (architecture.md)::

    hook_embed
    blocks.{i}.hook_resid_pre   input of block i
    blocks.{i}.hook_attn_out    what attention adds to the residual stream
    blocks.{i}.hook_resid_mid   resid_pre + attn_out (not defined for parallel blocks)
    blocks.{i}.hook_mlp_out     what the MLP adds to the residual stream
    blocks.{i}.mlp.hook_post    MLP neurons: the input of the down projection
    blocks.{i}.hook_resid_post  output of block i
    ln_final.hook_normalized    output of the final norm
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interp_lab.errors import UsageError


@dataclass(frozen=True)
class Family:
    """Where things live, as attribute paths from the top causal-LM module (relative ones from a block)."""

    name: str
    backbone: str  # the model without its lm_head
    layers: str
    embed: str
    final_norm: str
    attn_out: str  # relative: module whose output (or output[0]) attention adds to the residual
    mlp_out: str  # relative: module whose output the MLP adds to the residual
    neurons: str  # relative: module whose *input* is the MLP's neuron activations
    parallel: bool = False  # attention and MLP read the same input (no resid_mid)


_LLAMA = dict(backbone="model", layers="model.layers", embed="model.embed_tokens", final_norm="model.norm",
              attn_out="self_attn", mlp_out="mlp", neurons="mlp.down_proj")
FAMILIES: dict[str, Family] = {
    "llama": Family("llama", **_LLAMA),
    "mistral": Family("mistral", **_LLAMA),
    "qwen2": Family("qwen2", **_LLAMA),
    "qwen3": Family("qwen3", **_LLAMA),
    "gemma": Family("gemma", **_LLAMA),
    "phi3": Family("phi3", **_LLAMA),
    # Gemma 2/3 normalize each sublayer's output before adding it (sandwich norms)
    "gemma2": Family("gemma2", **{**_LLAMA, "attn_out": "post_attention_layernorm",
                                  "mlp_out": "post_feedforward_layernorm"}),
    "gemma3_text": Family("gemma3_text", **{**_LLAMA, "attn_out": "post_attention_layernorm",
                                            "mlp_out": "post_feedforward_layernorm"}),
    "phi": Family("phi", backbone="model", layers="model.layers", embed="model.embed_tokens",
                  final_norm="model.final_layernorm", attn_out="self_attn", mlp_out="mlp", neurons="mlp.fc2",
                  parallel=True),
    "gpt2": Family("gpt2", backbone="transformer", layers="transformer.h", embed="transformer.wte",
                   final_norm="transformer.ln_f", attn_out="attn", mlp_out="mlp", neurons="mlp.c_proj"),
    "gpt_neox": Family("gpt_neox", backbone="gpt_neox", layers="gpt_neox.layers", embed="gpt_neox.embed_in",
                       final_norm="gpt_neox.final_layer_norm", attn_out="post_attention_dropout",
                       mlp_out="post_mlp_dropout", neurons="mlp.dense_4h_to_h", parallel=True),
}
FAMILIES["gemma3"] = FAMILIES["gemma3_text"]

KINDS = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "mlp_post", "resid_post")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out|"
                    r"mlp\.hook_post)$")
_KIND = {"hook_resid_pre": "resid_pre", "hook_resid_mid": "resid_mid", "hook_resid_post": "resid_post",
         "hook_attn_out": "attn_out", "hook_mlp_out": "mlp_out", "mlp.hook_post": "mlp_post"}
_NAME = {v: k for k, v in _KIND.items()}


@dataclass(frozen=True)
class HookPoint:
    name: str
    kind: str  # embed, ln_final, or one of KINDS
    layer: int | None  # None for embed / ln_final


def family_of(model) -> Family:
    """The hook table for a transformers causal LM (by ``config.model_type``)."""
    config = model.config
    mtype = getattr(config, "model_type", None)
    fam = FAMILIES.get(mtype)
    if fam is None:
        raise UsageError(f"no hook table for model_type {mtype!r} (known: {', '.join(sorted(FAMILIES))})")
    if fam.name == "gpt_neox" and not getattr(config, "use_parallel_residual", True):
        fam = Family(**{**fam.__dict__, "parallel": False})
    return fam


def n_layers(model) -> int:
    return len(get_module(model, family_of(model).layers))


def get_module(root, path: str):
    mod = root
    for part in path.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


def parse(name: str, model) -> HookPoint:
    """Validate a hook name against the model; raise a UsageError naming what exists."""
    if name == "hook_embed":
        return HookPoint(name, "embed", None)
    if name == "ln_final.hook_normalized":
        return HookPoint(name, "ln_final", None)
    m = _BLOCK.match(name)
    if not m:
        raise UsageError(f"unknown hook {name!r} (use hook_embed, ln_final.hook_normalized or "
                         "blocks.N.{hook_resid_pre,hook_attn_out,hook_resid_mid,hook_mlp_out,mlp.hook_post,"
                         "hook_resid_post})")
    layer, kind = int(m.group(1)), _KIND[m.group(2)]
    total = n_layers(model)
    if layer >= total:
        raise UsageError(f"hook {name!r}: the model has {total} layers (0..{total - 1})")
    if kind == "resid_mid" and family_of(model).parallel:
        raise UsageError(f"hook {name!r}: {family_of(model).name} blocks are parallel (attention and MLP read "
                         "the same input), so there is no resid_mid")
    return HookPoint(name, kind, layer)


def hook_name(kind: str, layer: int | None = None) -> str:
    if kind == "embed":
        return "hook_embed"
    if kind == "ln_final":
        return "ln_final.hook_normalized"
    return f"blocks.{layer}.{_NAME[kind]}"


def expand(spec: str, model) -> list[HookPoint]:
    """Hook names from a comma list; ``*`` for every layer (``blocks.*.hook_resid_post``), or a kind alone."""
    total = n_layers(model)
    out: list[HookPoint] = []
    for raw in (s.strip() for s in spec.split(",")):
        if not raw:
            continue
        if raw in _KIND.values() or raw in _KIND:
            raw = f"blocks.*.{_NAME.get(raw, raw)}"
        if raw.startswith("blocks.*."):
            out.extend(parse(raw.replace("*", str(i), 1), model) for i in range(total))
        else:
            out.append(parse(raw, model))
    seen: set[str] = set()
    return [h for h in out if not (h.name in seen or seen.add(h.name))]


def all_hooks(model) -> list[str]:
    fam = family_of(model)
    kinds = [k for k in KINDS if not (k == "resid_mid" and fam.parallel)]
    return ["hook_embed", *(hook_name(k, i) for i in range(n_layers(model)) for k in kinds), "ln_final.hook_normalized"]
