"""Hook points with TransformerLens-style names, mapped onto each architecture's modules.

One table per family says where the blocks, the embedding and the final norm
live, which module's output is exactly what the attention and MLP sublayers
add to the residual stream (Gemma 2/3 add a normalized output, so theirs is
the post-norm), and where attention's projections, the MLP's input projection
and the two pre-sublayer norms are. Names (architecture.md)::

    hook_embed
    blocks.{i}.hook_resid_pre        input of block i
    blocks.{i}.ln1.hook_normalized   the normed input of attention, the norm's weight applied as HF applies it
    blocks.{i}.attn.hook_q           queries per head [batch, pos, head, d_head] (before rotary / q-norm)
    blocks.{i}.attn.hook_k           keys [batch, pos, kv_head, d_head]: grouped-query models have n_kv_heads
    blocks.{i}.attn.hook_v           values [batch, pos, kv_head, d_head]
    blocks.{i}.attn.hook_attn_scores pre-softmax scores [batch, head, query, key], scaled, soft-capped, masked
    blocks.{i}.attn.hook_pattern     attention pattern [batch, head, query, key] (post-softmax)
    blocks.{i}.attn.hook_z           each head's output before the output projection [batch, pos, head, d_head]
    blocks.{i}.hook_attn_out         what attention adds to the residual stream
    blocks.{i}.hook_resid_mid        resid_pre + attn_out (not defined for parallel blocks)
    blocks.{i}.ln2.hook_normalized   the normed input of the MLP (not defined where one norm feeds both: Phi)
    blocks.{i}.mlp.hook_pre          the MLP's pre-activation: the gate projection's output in gated MLPs
    blocks.{i}.mlp.hook_post         MLP neurons: the input of the down projection
    blocks.{i}.hook_mlp_out          what the MLP adds to the residual stream
    blocks.{i}.hook_resid_post       output of block i
    ln_final.hook_normalized         output of the final norm

These follow TransformerLens 3.9 (its ``TransformerBridge`` and
``HookedTransformer``): ``hook_q/k/v`` are the projections' outputs split into
heads, keys and values with the model's key/value heads (not repeated for
grouped-query attention); ``hook_z`` is the output projection's input;
``mlp.hook_pre`` is ``gate_proj``'s output in a gated MLP (``up_proj``'s is
TransformerLens's ``hook_pre_linear``) and the first projection's output
otherwise. Masked score entries hold the dtype's most negative number, as in
HF's eager attention and the bridge (``HookedTransformer`` writes -inf).
``ln*.hook_normalized`` differ on purpose: TransformerLens's is the input
divided by its RMS (LayerNorm: centred and divided by its standard
deviation) *before* the norm's weight, which ``HookedTransformer`` folds into
the next projections (``fold_ln``); ours is the norm module's output, weight
applied as HF applies it (Gemma's ``1 + w`` included), i.e. exactly what the
projections read: the bridge's ``ln1.hook_out``, or TransformerLens's
``hook_normalized`` times the weight (tested both ways).
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
    attn: str  # relative: the attention module (its attention function computes scores and pattern)
    qkv: str | tuple[str, str, str]  # relative: q, k and v projections, or one fused projection
    attn_o: str  # relative: attention's output projection (its input is hook_z)
    mlp_in: str  # relative: the MLP's gate (gated) or input projection, whose output is mlp.hook_pre
    ln1: str  # relative: the norm before attention
    ln2: str | None  # relative: the norm before the MLP (None: the blocks have one norm for both)
    qkv_layout: str = "split"  # split (three modules), concat ([q | k | v]), neox (per head [q k v])
    gate_up: bool = False  # mlp_in is a fused [gate | up] projection: mlp.hook_pre is its first half
    parallel: bool = False  # attention and MLP read the same input (no resid_mid)


_LLAMA = dict(backbone="model", layers="model.layers", embed="model.embed_tokens", final_norm="model.norm",
              attn_out="self_attn", mlp_out="mlp", neurons="mlp.down_proj", attn="self_attn",
              qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), attn_o="self_attn.o_proj",
              mlp_in="mlp.gate_proj", ln1="input_layernorm", ln2="post_attention_layernorm")
# Gemma 2/3 normalize each sublayer's output before adding it (sandwich norms); the MLP reads pre_feedforward_layernorm
_GEMMA2 = {**_LLAMA, "attn_out": "post_attention_layernorm", "mlp_out": "post_feedforward_layernorm",
           "ln2": "pre_feedforward_layernorm"}
FAMILIES: dict[str, Family] = {
    "llama": Family("llama", **_LLAMA),
    "mistral": Family("mistral", **_LLAMA),
    "qwen2": Family("qwen2", **_LLAMA),
    "qwen3": Family("qwen3", **_LLAMA),
    "gemma": Family("gemma", **_LLAMA),
    "phi3": Family("phi3", **{**_LLAMA, "qkv": "self_attn.qkv_proj", "qkv_layout": "concat",
                              "mlp_in": "mlp.gate_up_proj", "gate_up": True}),
    "gemma2": Family("gemma2", **_GEMMA2),
    "gemma3_text": Family("gemma3_text", **_GEMMA2),
    "phi": Family("phi", backbone="model", layers="model.layers", embed="model.embed_tokens",
                  final_norm="model.final_layernorm", attn_out="self_attn", mlp_out="mlp", neurons="mlp.fc2",
                  attn="self_attn", qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                  attn_o="self_attn.dense", mlp_in="mlp.fc1", ln1="input_layernorm", ln2=None, parallel=True),
    "gpt2": Family("gpt2", backbone="transformer", layers="transformer.h", embed="transformer.wte",
                   final_norm="transformer.ln_f", attn_out="attn", mlp_out="mlp", neurons="mlp.c_proj", attn="attn",
                   qkv="attn.c_attn", qkv_layout="concat", attn_o="attn.c_proj", mlp_in="mlp.c_fc", ln1="ln_1",
                   ln2="ln_2"),
    "gpt_neox": Family("gpt_neox", backbone="gpt_neox", layers="gpt_neox.layers", embed="gpt_neox.embed_in",
                       final_norm="gpt_neox.final_layer_norm", attn_out="post_attention_dropout",
                       mlp_out="post_mlp_dropout", neurons="mlp.dense_4h_to_h", attn="attention",
                       qkv="attention.query_key_value", qkv_layout="neox", attn_o="attention.dense",
                       mlp_in="mlp.dense_h_to_4h", ln1="input_layernorm", ln2="post_attention_layernorm",
                       parallel=True),
}
FAMILIES["gemma3"] = FAMILIES["gemma3_text"]

# per block, in the order the forward computes them
KINDS = ("resid_pre", "ln1", "attn_q", "attn_k", "attn_v", "attn_scores", "attn_pattern", "attn_z", "attn_out",
         "resid_mid", "ln2", "mlp_pre", "mlp_post", "mlp_out", "resid_post")
_KIND = {"hook_resid_pre": "resid_pre", "ln1.hook_normalized": "ln1", "attn.hook_q": "attn_q",
         "attn.hook_k": "attn_k", "attn.hook_v": "attn_v", "attn.hook_attn_scores": "attn_scores",
         "attn.hook_pattern": "attn_pattern", "attn.hook_z": "attn_z", "hook_attn_out": "attn_out",
         "hook_resid_mid": "resid_mid", "ln2.hook_normalized": "ln2", "mlp.hook_pre": "mlp_pre",
         "mlp.hook_post": "mlp_post", "hook_mlp_out": "mlp_out", "hook_resid_post": "resid_post"}
_NAME = {v: k for k, v in _KIND.items()}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(" + "|".join(re.escape(k) for k in _KIND) + r")$")
HEAD_KINDS = frozenset({"attn_q", "attn_k", "attn_v", "attn_z"})  # [batch, pos, head, d_head]
PATTERN_KINDS = frozenset({"attn_scores", "attn_pattern"})  # [batch, head, query, key]


@dataclass(frozen=True)
class HookPoint:
    name: str
    kind: str  # embed, ln_final, or one of KINDS
    layer: int | None  # None for embed / ln_final

    @property
    def layout(self) -> str:
        """``resid`` [batch, pos, d], ``heads`` [batch, pos, head, d_head] or ``pattern`` [batch, head, q, k]."""
        return "heads" if self.kind in HEAD_KINDS else "pattern" if self.kind in PATTERN_KINDS else "resid"


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
                         f"blocks.N.{{{','.join(_KIND)}}})")
    layer, kind = int(m.group(1)), _KIND[m.group(2)]
    total = n_layers(model)
    if layer >= total:
        raise UsageError(f"hook {name!r}: the model has {total} layers (0..{total - 1})")
    fam = family_of(model)
    if kind == "resid_mid" and fam.parallel:
        raise UsageError(f"hook {name!r}: {fam.name} blocks are parallel (attention and MLP read "
                         "the same input), so there is no resid_mid")
    if kind == "ln2" and fam.ln2 is None:
        raise UsageError(f"hook {name!r}: {fam.name} blocks have one norm for attention and MLP: use "
                         f"blocks.{layer}.ln1.hook_normalized")
    return HookPoint(name, kind, layer)


def hook_name(kind: str, layer: int | None = None) -> str:
    if kind == "embed":
        return "hook_embed"
    if kind == "ln_final":
        return "ln_final.hook_normalized"
    return f"blocks.{layer}.{_NAME[kind]}"


def expand(spec: str, model) -> list[HookPoint]:
    """Hook names from a comma list; ``*`` for every layer (``blocks.*.hook_resid_post``), or a kind alone
    (``resid_post``, ``hook_resid_post``, ``attn_z``, ``attn.hook_z``)."""
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


def kinds_of(model) -> list[str]:
    """The block hook kinds this model's family defines, in forward order."""
    fam = family_of(model)
    return [k for k in KINDS if not ((k == "resid_mid" and fam.parallel) or (k == "ln2" and fam.ln2 is None))]


def all_hooks(model) -> list[str]:
    kinds = kinds_of(model)
    return ["hook_embed", *(hook_name(k, i) for i in range(n_layers(model)) for k in kinds), "ln_final.hook_normalized"]
