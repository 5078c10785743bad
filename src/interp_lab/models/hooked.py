"""Reading and writing hook points during a forward pass (torch is imported by callers of this module).

``run(model, inputs, read=[...], edits=[...])`` registers the few PyTorch
hooks the request needs, captures the read hook points (at chosen positions
only), applies the edits (replace / add / zero / clamp / project_out, or any
function, at chosen positions, heads and channels), stops the forward after the last needed layer when no logits
are asked for, runs the backbone without its lm_head in that case, and
removes every hook afterwards.

Where each hook is read (``models/hooks.py`` has the table): the residual stream and the sublayer outputs
from the block and sublayer modules; ``ln1/ln2.hook_normalized`` from the norm modules' outputs;
``attn.hook_q/k/v`` from the projections' outputs (a fused projection -- GPT-2's ``c_attn``, GPT-NeoX's
``query_key_value``, Phi-3's ``qkv_proj`` -- split as the model splits it), ``attn.hook_z`` from the output
projection's input, ``mlp.hook_pre`` from the gate (or input) projection's output, each split into heads by a
view. ``attn.hook_attn_scores`` and ``attn.hook_pattern`` exist only inside the attention function, so a run
that reads or edits them switches the model, for that forward only, to ``interp_lab_eager``: HF's eager
attention (scaled scores, Gemma 2's soft-capping, the eager mask with sliding windows and padding, softmax in
float32), registered as a transformers attention implementation, that passes the scores and the pattern
through the run's hooks. Recomputing them from q and k instead would mean re-implementing every family's
rotary embedding, q/k norms, scaling, soft-capping and sliding windows; the attention function receives all
of that already applied, and edits to the pattern change what the layer computes. Every other run keeps the
model's own attention implementation (sdpa by default), so reading the residual stream stays as fast as it was.

Shapes are TransformerLens's: ``[batch, pos, head, d_head]`` for q/k/v/z, ``[batch, head, query, key]`` for
scores and pattern. With ``flat=True`` (what harvest, stores, SAEs and interventions use) the per-head hooks
are one vector per token, ``[batch, pos, head * d_head]`` head-major as SAE Lens flattens ``hook_z``, both
when read and when edited (an edit with ``heads`` still selects heads); scores and pattern are not per-token
vectors and cannot be read that way.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from interp_lab.errors import UsageError
from interp_lab.models.hooks import HookPoint, family_of, get_module, parse

Positions = None | Sequence[int] | torch.Tensor  # all / these positions / one per row ([batch] tensor)
ATTENTION = "interp_lab_eager"  # the attention implementation a run reading scores or pattern switches to


class StopForward(Exception):
    """Raised inside a hook once everything needed has been captured."""


@dataclass
class Edit:
    """A write to one hook point: ``op`` at ``positions`` (query positions of scores / pattern), ``heads``
    (of q/k/v/z, scores and pattern) and ``channels`` of the last dim."""

    hook: str
    op: Literal["replace", "add", "zero", "clamp", "project_out", "apply"]
    value: Any = None  # replace / add: broadcastable to the selection; project_out: a direction [d]
    # whose component is removed; apply: a function selection -> same shape
    positions: Positions = None
    channels: Sequence[int] | None = None
    min: float | None = None  # clamp bounds
    max: float | None = None
    heads: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.op not in ("replace", "add", "zero", "clamp", "project_out", "apply"):
            raise UsageError(f"unknown edit op {self.op!r} (replace, add, zero, clamp, project_out, apply)")
        if self.op in ("replace", "add", "project_out", "apply") and self.value is None:
            raise UsageError(f"edit {self.op} on {self.hook} needs a value")
        if self.op == "clamp" and self.min is None and self.max is None:
            raise UsageError(f"clamp on {self.hook} needs min and/or max")


@dataclass
class RunResult:
    logits: torch.Tensor | None
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    stopped_early: bool = False


def position_mask(positions: Positions, batch: int, seq: int, device) -> torch.Tensor | None:
    """[batch, seq] bool mask of the selected positions (None = all)."""
    if positions is None:
        return None
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
    if isinstance(positions, torch.Tensor):
        if positions.dim() != 1 or positions.shape[0] != batch:
            raise UsageError(f"per-row positions must be a [batch={batch}] tensor, got {tuple(positions.shape)}")
        mask[torch.arange(batch, device=device), positions.to(device)] = True
    else:
        mask[:, [p % seq for p in positions]] = True
    return mask


def _select(t: torch.Tensor, positions: Positions, layout: str = "resid") -> torch.Tensor:
    """[batch, seq, ...] -> the read positions: as is (None), [batch, k, ...] (list) or [batch, ...] (per row);
    for scores and pattern [batch, head, query, key] the query positions, the head axis kept second."""
    if positions is None:
        return t
    if layout == "pattern":
        got = _select(t.transpose(1, 2), positions)
        return got if isinstance(positions, torch.Tensor) else got.transpose(1, 2)
    if isinstance(positions, torch.Tensor):
        return t[torch.arange(t.shape[0], device=t.device), positions.to(t.device)]
    return t[:, [p % t.shape[1] for p in positions]]


def apply_edit(t: torch.Tensor, e: Edit, layout: str = "resid", flat: bool = False) -> torch.Tensor:
    """A new tensor with the edit applied (the original is left untouched). ``layout`` is the hook's
    (``HookPoint.layout``); ``flat``: a per-head hook is edited as [batch, pos, head * d_head] unless the
    edit selects heads."""
    if layout == "heads" and flat and e.heads is None:
        return apply_edit(t.flatten(-2), e).view_as(t)
    if layout == "pattern":  # [batch, head, query, key]: positions are query positions
        return apply_edit(t.transpose(1, 2), e, "heads").transpose(1, 2)
    if e.heads is not None:
        if layout != "heads":
            raise UsageError(f"edit on {e.hook}: only attention hooks (q/k/v/z, scores, pattern) have heads")
        bad = [h for h in e.heads if not -t.shape[-2] <= h < t.shape[-2]]
        if bad:
            raise UsageError(f"edit on {e.hook}: head(s) {bad} out of range (it has {t.shape[-2]} heads)")
    out = t.clone()
    mask = position_mask(e.positions, t.shape[0], t.shape[1], t.device) if t.dim() >= 3 else None
    sub = out if mask is None else out[mask]
    hsub = sub if e.heads is None else sub[..., list(e.heads), :]
    view = hsub if e.channels is None else hsub[..., list(e.channels)]
    if e.op == "zero":
        view = torch.zeros_like(view)
    elif e.op == "replace":
        view = torch.as_tensor(e.value, dtype=view.dtype, device=view.device).expand_as(view).clone()
    elif e.op == "add":
        view = view + torch.as_tensor(e.value, dtype=view.dtype, device=view.device)
    elif e.op == "project_out":
        u = torch.as_tensor(e.value, dtype=view.dtype, device=view.device)
        u = u / u.norm()
        view = view - (view @ u)[..., None] * u
    elif e.op == "apply":
        view = e.value(view)
    else:
        view = view.clamp(min=e.min, max=e.max)
    if e.channels is not None:
        hsub[..., list(e.channels)] = view
    else:
        hsub = view
    if e.heads is not None:
        sub[..., list(e.heads), :] = hsub
    else:
        sub = hsub
    if mask is None:
        return sub
    out[mask] = sub
    return out


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


# ---------------------------------------------------------------------- attention scores and pattern

_VISITORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # attention module -> visit(kind, t)


def eager_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    softcap: float | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """HF's eager attention, as every supported family computes it (grouped keys and values repeated per
    query head, scores scaled, soft-capped where the model does, the mask added, softmax in float32), with
    the scores and the pattern passed through the run's hooks of this module."""
    visit = _VISITORS.get(module)
    rep = query.shape[1] // key.shape[1]
    if rep > 1:
        key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        m = attention_mask[:, :, :, : key.shape[-2]]
        scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min) if m.dtype == torch.bool else scores + m
    if visit is not None:
        scores = visit("attn_scores", scores)
    pattern = torch.softmax(scores, -1, dtype=torch.float32).to(query.dtype)
    pattern = torch.nn.functional.dropout(pattern, p=dropout, training=module.training)
    if visit is not None:
        pattern = visit("attn_pattern", pattern)
    return torch.matmul(pattern, value).transpose(1, 2).contiguous(), pattern


_registered = False


@contextlib.contextmanager
def eager_scores(model, attention_modules: Sequence[torch.nn.Module]):
    """The model computes attention with ``eager_attention`` (and its eager mask) inside the block."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionInterface.register(ATTENTION, eager_attention)
        AttentionMaskInterface.register(ATTENTION, eager_mask)
        _registered = True
    configs: dict[int, Any] = {}
    for c in (model.config, *(getattr(m, "config", None) for m in attention_modules)):
        if c is not None:
            configs.setdefault(id(c), c)
    saved = [(c, c._attn_implementation) for c in configs.values()]
    try:
        for c, _ in saved:
            c._attn_implementation = ATTENTION
        yield
    finally:
        for c, impl in saved:  # the top config first: its setter also resets sub-configs, restored after it
            c._attn_implementation = impl


class HookedRun:
    """Registers the hooks for one request; use as a context manager around the forward call."""

    def __init__(self, model, read: Sequence[str] = (), edits: Sequence[Edit] = (), positions: Positions = None,
                 stop_after: int | None = None, store_dtype: torch.dtype | None = None, flat: bool = False):
        self.model = model
        self.fam = family_of(model)
        self.read = {h.name: h for h in (parse(n, model) for n in read)}
        self.points: dict[str, HookPoint] = dict(self.read)
        self.edits: dict[str, list[Edit]] = {}
        for e in edits:
            self.points.setdefault(e.hook, parse(e.hook, model))
            self.edits.setdefault(e.hook, []).append(e)
        self.flat = flat
        if flat:
            for h in self.read.values():
                if h.layout == "pattern":
                    raise UsageError(f"{h.name} is [batch, head, query, key], not one vector per token: stores, "
                                     "SAEs and features read per-token hooks (read it with "
                                     "interp_lab.models.hooked.run)")
        self.positions = positions
        self.stop_after = stop_after
        self.store_dtype = store_dtype
        self.acts: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._block_in: dict[int, torch.Tensor] = {}
        self._visited: list[torch.nn.Module] = []  # attention modules whose scores / pattern are hooked
        self._eager: contextlib.AbstractContextManager | None = None

    # ------------------------------------------------------------------ hook bodies

    def _wanted(self, name: str) -> bool:
        return name in self.read or name in self.edits

    def _visit(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Apply the edits of ``name`` to ``t`` and capture it if it is read; returns the (new) tensor."""
        layout = self.points[name].layout
        for e in self.edits.get(name, ()):
            t = apply_edit(t, e, layout, self.flat)
        if name in self.read:
            got = _select(t, self.positions, layout)
            if self.flat and layout == "heads":
                got = got.flatten(-2)
            got = got.detach()
            self.acts[name] = got.to(self.store_dtype) if self.store_dtype is not None else got.clone()
        return t

    def _register(self) -> None:
        fam, model = self.fam, self.model
        blocks = get_module(model, fam.layers)
        points = list(self.points.values())
        layers = sorted({p.layer for p in points if p.layer is not None})
        kinds = {(p.kind, p.layer) for p in points}
        if ("embed", None) in kinds:
            self._out_hook(get_module(model, fam.embed), "hook_embed")
        for i in layers:
            block = blocks[i]
            need_mid = ("resid_mid", i) in kinds
            if ("resid_pre", i) in kinds or need_mid:
                self._handles.append(block.register_forward_pre_hook(self._pre_block(i), with_kwargs=True))
            if ("ln1", i) in kinds:
                self._out_hook(get_module(block, fam.ln1), f"blocks.{i}.ln1.hook_normalized")
            if {("attn_q", i), ("attn_k", i), ("attn_v", i)} & kinds:
                self._qkv(block, i)
            if ("attn_scores", i) in kinds or ("attn_pattern", i) in kinds:
                attn = get_module(block, fam.attn)
                _VISITORS[attn] = self._scores(i)
                self._visited.append(attn)
            if ("attn_z", i) in kinds:
                name = f"blocks.{i}.attn.hook_z"
                d = _head_dim(get_module(block, fam.attn))
                self._handles.append(get_module(block, fam.attn_o).register_forward_pre_hook(
                    self._pre_first(name, lambda x, d=d: x.unflatten(-1, (-1, d)), lambda z: z.flatten(-2))))
            if ("attn_out", i) in kinds or need_mid:
                self._handles.append(get_module(block, fam.attn_out).register_forward_hook(self._attn(i)))
            if ("ln2", i) in kinds:
                self._out_hook(get_module(block, fam.ln2), f"blocks.{i}.ln2.hook_normalized")
            if ("mlp_pre", i) in kinds:
                self._mlp_pre(block, i)
            if ("mlp_post", i) in kinds:
                name = f"blocks.{i}.mlp.hook_post"
                self._handles.append(get_module(block, fam.neurons).register_forward_pre_hook(self._pre_first(name)))
            if ("mlp_out", i) in kinds:
                self._out_hook(get_module(block, fam.mlp_out), f"blocks.{i}.hook_mlp_out")
            if ("resid_post", i) in kinds:
                self._out_hook(block, f"blocks.{i}.hook_resid_post")
        if ("ln_final", None) in kinds:
            self._out_hook(get_module(model, fam.final_norm), "ln_final.hook_normalized")
        if self.stop_after is not None:
            target = get_module(model, fam.embed) if self.stop_after < 0 else blocks[self.stop_after]

            def stop(module, args, output):
                raise StopForward

            self._handles.append(target.register_forward_hook(stop))

    def _out_hook(self, module, name: str) -> None:
        def hook(mod, args, output):
            new = self._visit(name, _first(output))
            return _replace_first(output, new) if name in self.edits else None

        self._handles.append(module.register_forward_hook(hook))

    def _pre_first(self, name: str, to_hook: Callable | None = None, back: Callable | None = None):
        """A pre-hook visiting the module's first input (``to_hook`` / ``back`` reshape it for the hook)."""
        def hook(mod, args):
            x = args[0] if to_hook is None else to_hook(args[0])
            new = self._visit(name, x)
            if name not in self.edits:
                return None
            return (new if back is None else back(new), *args[1:])

        return hook

    def _pre_block(self, i: int):
        name = f"blocks.{i}.hook_resid_pre"

        def hook(mod, args, kwargs):
            positional = bool(args)
            hidden = args[0] if positional else kwargs["hidden_states"]
            hidden = self._visit(name, hidden) if self._wanted(name) else hidden
            self._block_in[i] = hidden
            if name not in self.edits:
                return None
            if positional:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return hook

    def _attn(self, i: int):
        attn_name, mid_name = f"blocks.{i}.hook_attn_out", f"blocks.{i}.hook_resid_mid"

        def hook(mod, args, output):
            attn = _first(output)
            if self._wanted(attn_name):
                attn = self._visit(attn_name, attn)
            if self._wanted(mid_name):
                pre = self._block_in[i]
                mid = self._visit(mid_name, pre + attn)
                if mid_name in self.edits:  # resid_mid is set by changing what attention adds
                    attn = mid - pre
            if attn_name in self.edits or mid_name in self.edits:
                return _replace_first(output, attn)
            return None

        return hook

    def _qkv(self, block, i: int) -> None:
        """q, k and v from their projections (or the fused one, split as the model splits it)."""
        fam = self.fam
        d = _head_dim(get_module(block, fam.attn))
        names = [f"blocks.{i}.attn.hook_{x}" for x in "qkv"]
        if isinstance(fam.qkv, tuple):
            for path, name in zip(fam.qkv, names):
                if self._wanted(name):
                    self._out_hook_reshaped(get_module(block, path), name, d)
            return
        n_q = int(self.model.config.num_attention_heads) * d

        def hook(mod, args, output):
            if fam.qkv_layout == "neox":  # [batch, pos, head, 3 * d_head]: each head's q, k, v side by side
                per_head = output.unflatten(-1, (-1, 3 * d))
                parts = [per_head[..., j * d: (j + 1) * d] for j in range(3)]
            else:  # [q | k | v], k and v with the key/value heads
                n_kv = (output.shape[-1] - n_q) // 2
                parts = [x.unflatten(-1, (-1, d)) for x in output.split([n_q, n_kv, n_kv], -1)]
            new = [self._visit(n, p) if self._wanted(n) else p for n, p in zip(names, parts)]
            if not any(n in self.edits for n in names):
                return None
            if fam.qkv_layout == "neox":
                return torch.cat(new, -1).flatten(-2)
            return torch.cat([p.flatten(-2) for p in new], -1)

        self._handles.append(get_module(block, fam.qkv).register_forward_hook(hook))

    def _out_hook_reshaped(self, module, name: str, d: int) -> None:
        def hook(mod, args, output):
            new = self._visit(name, output.unflatten(-1, (-1, d)))
            return new.flatten(-2) if name in self.edits else None

        self._handles.append(module.register_forward_hook(hook))

    def _mlp_pre(self, block, i: int) -> None:
        name = f"blocks.{i}.mlp.hook_pre"
        if not self.fam.gate_up:
            self._out_hook(get_module(block, self.fam.mlp_in), name)
            return

        def hook(mod, args, output):  # a fused [gate | up] projection: the gate is the first half
            gate, up = output.chunk(2, -1)
            new = self._visit(name, gate)
            return torch.cat([new, up], -1) if name in self.edits else None

        self._handles.append(get_module(block, self.fam.mlp_in).register_forward_hook(hook))

    def _scores(self, i: int) -> Callable[[str, torch.Tensor], torch.Tensor]:
        def visit(kind: str, t: torch.Tensor) -> torch.Tensor:
            name = f"blocks.{i}.attn.hook_{'pattern' if kind == 'attn_pattern' else kind}"
            return self._visit(name, t) if self._wanted(name) else t

        return visit

    def __enter__(self) -> HookedRun:
        try:
            self._register()
            if self._visited:
                self._eager = eager_scores(self.model, self._visited)
                self._eager.__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._block_in.clear()
        for m in self._visited:
            _VISITORS.pop(m, None)
        self._visited.clear()
        if self._eager is not None:
            self._eager.__exit__(None, None, None)
            self._eager = None


def _head_dim(attn) -> int:
    """d_head of an attention module (``head_dim``; GPT-NeoX calls it ``head_size``)."""
    d = getattr(attn, "head_dim", None) or getattr(attn, "head_size", None)
    if not d:
        raise UsageError(f"cannot tell the head size of {type(attn).__name__}")
    return int(d)


def last_needed_layer(model, read: Sequence[str]) -> int | None:
    """The block after which nothing read is left to compute (-1: only the embedding); None if ln_final is read."""
    points: list[HookPoint] = [parse(n, model) for n in read]
    if any(p.kind == "ln_final" for p in points):
        return None
    layers = [p.layer for p in points if p.layer is not None]
    return max(layers) if layers else (-1 if points else None)


_CACHE_ARG: dict[type, str] = {}


def cache_arg(module) -> str:
    """The forward argument that takes a key/value cache (``cache`` in recent transformers)."""
    kind = type(module)
    if kind not in _CACHE_ARG:
        import inspect

        params = inspect.signature(module.forward).parameters
        _CACHE_ARG[kind] = "cache" if "cache" in params else "past_key_values"
    return _CACHE_ARG[kind]


@torch.inference_mode()
def run(model, inputs: dict[str, torch.Tensor], read: Sequence[str] = (), edits: Sequence[Edit] = (), *,
        positions: Positions = None, logits: bool = True, store_dtype: torch.dtype | None = None,
        cache: Any = None, flat: bool = False) -> RunResult:
    """One forward pass with reads and edits. Without ``logits`` the lm_head is skipped and the
    forward stops after the last layer any read needs. With ``cache`` (a transformers ``Cache`` of
    the preceding tokens) ``inputs`` continue it and the cache grows by their length. ``flat``: per-head
    hooks are read and edited as one vector per token (module docstring)."""
    stop = None if logits else last_needed_layer(model, read)
    if not logits and stop is None and not read:
        raise UsageError("nothing to compute: no logits and no hooks to read")
    with HookedRun(model, read, edits, positions, stop_after=stop, store_dtype=store_dtype, flat=flat) as h:
        out_logits = None
        kw = {"use_cache": False} if cache is None else {"use_cache": True, cache_arg(model): cache}
        try:
            if logits:
                out_logits = model(**inputs, **kw).logits
            else:
                get_module(model, family_of(model).backbone)(**inputs, **kw)
            stopped = False
        except StopForward:
            stopped = True
        return RunResult(logits=out_logits, acts=dict(h.acts), stopped_early=stopped)


def hook_widths(lm, names: Sequence[str]) -> dict[str, int]:
    """The width of each hook point's per-token vector (``flat``: n_heads * d_head for q/k/v/z), from one
    forward over a short probe text."""
    probe = lm.tokenizer(["width probe"], return_tensors="pt")
    acts = run(lm.model, dict(probe), names, positions=[-1], logits=False, flat=True).acts
    return {h: int(acts[h].shape[-1]) for h in names}
