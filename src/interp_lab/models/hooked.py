"""Reading and writing hook points during a forward pass (torch is imported by callers of this module).

``run(model, inputs, read=[...], edits=[...])`` registers the few PyTorch
hooks the request needs, captures the read hook points (at chosen positions
only), applies the edits (replace / add / zero / clamp / project_out, or any
function, at chosen positions and channels), stops the forward after the last needed layer when no logits
are asked for, runs the backbone without its lm_head in that case, and
removes every hook afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from interp_lab.errors import UsageError
from interp_lab.models.hooks import HookPoint, family_of, get_module, parse

Positions = None | Sequence[int] | torch.Tensor  # all / these positions / one per row ([batch] tensor)


class StopForward(Exception):
    """Raised inside a hook once everything needed has been captured."""


@dataclass
class Edit:
    """A write to one hook point: ``op`` at ``positions`` (and ``channels`` of the last dim)."""

    hook: str
    op: Literal["replace", "add", "zero", "clamp", "project_out", "apply"]
    value: Any = None  # replace / add: broadcastable to [selected, channels]; project_out: a direction [d]
    # whose component is removed; apply: a function [selected, channels] -> same shape
    positions: Positions = None
    channels: Sequence[int] | None = None
    min: float | None = None  # clamp bounds
    max: float | None = None

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


def _select(t: torch.Tensor, positions: Positions) -> torch.Tensor:
    """[batch, seq, d] -> the read positions: as is (None), [batch, k, d] (list) or [batch, d] (per row)."""
    if positions is None:
        return t
    if isinstance(positions, torch.Tensor):
        return t[torch.arange(t.shape[0], device=t.device), positions.to(t.device)]
    return t[:, [p % t.shape[1] for p in positions]]


def apply_edit(t: torch.Tensor, e: Edit) -> torch.Tensor:
    """A new tensor with the edit applied (the original is left untouched)."""
    out = t.clone()
    mask = position_mask(e.positions, t.shape[0], t.shape[1], t.device) if t.dim() == 3 else None
    sub = out if mask is None else out[mask]
    view = sub if e.channels is None else sub[..., list(e.channels)]
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
        sub[..., list(e.channels)] = view
    else:
        sub = view
    if mask is None:
        return sub
    out[mask] = sub
    return out


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


class HookedRun:
    """Registers the hooks for one request; use as a context manager around the forward call."""

    def __init__(self, model, read: Sequence[str] = (), edits: Sequence[Edit] = (), positions: Positions = None,
                 stop_after: int | None = None, store_dtype: torch.dtype | None = None):
        self.model = model
        self.fam = family_of(model)
        self.read = {h.name: h for h in (parse(n, model) for n in read)}
        self.edits: dict[str, list[Edit]] = {}
        for e in edits:
            parse(e.hook, model)
            self.edits.setdefault(e.hook, []).append(e)
        self.positions = positions
        self.stop_after = stop_after
        self.store_dtype = store_dtype
        self.acts: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._block_in: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ hook bodies

    def _visit(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Apply the edits of ``name`` to ``t`` and capture it if it is read; returns the (new) tensor."""
        for e in self.edits.get(name, ()):
            t = apply_edit(t, e)
        if name in self.read:
            got = _select(t, self.positions).detach()
            self.acts[name] = got.to(self.store_dtype) if self.store_dtype is not None else got.clone()
        return t

    def _register(self) -> None:
        fam, model = self.fam, self.model
        blocks = get_module(model, fam.layers)
        points = [parse(n, model) for n in {*self.read, *self.edits}]
        layers = sorted({p.layer for p in points if p.layer is not None})
        kinds = {(p.kind, p.layer) for p in points}
        if ("embed", None) in kinds:
            self._out_hook(get_module(model, fam.embed), "hook_embed")
        for i in layers:
            block = blocks[i]
            need_mid = ("resid_mid", i) in kinds
            if ("resid_pre", i) in kinds or need_mid:
                self._handles.append(block.register_forward_pre_hook(self._pre_block(i), with_kwargs=True))
            if ("attn_out", i) in kinds or need_mid:
                self._handles.append(get_module(block, fam.attn_out).register_forward_hook(self._attn(i)))
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

    def _pre_first(self, name: str):
        def hook(mod, args):
            new = self._visit(name, args[0])
            return (new, *args[1:]) if name in self.edits else None

        return hook

    def _pre_block(self, i: int):
        name = f"blocks.{i}.hook_resid_pre"

        def hook(mod, args, kwargs):
            positional = bool(args)
            hidden = args[0] if positional else kwargs["hidden_states"]
            hidden = self._visit(name, hidden) if (name in self.read or name in self.edits) else hidden
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
            if attn_name in self.read or attn_name in self.edits:
                attn = self._visit(attn_name, attn)
            if mid_name in self.read or mid_name in self.edits:
                pre = self._block_in[i]
                mid = self._visit(mid_name, pre + attn)
                if mid_name in self.edits:  # resid_mid is set by changing what attention adds
                    attn = mid - pre
            if attn_name in self.edits or mid_name in self.edits:
                return _replace_first(output, attn)
            return None

        return hook

    def __enter__(self) -> HookedRun:
        self._register()
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._block_in.clear()


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
        cache: Any = None) -> RunResult:
    """One forward pass with reads and edits. Without ``logits`` the lm_head is skipped and the
    forward stops after the last layer any read needs. With ``cache`` (a transformers ``Cache`` of
    the preceding tokens) ``inputs`` continue it and the cache grows by their length."""
    stop = None if logits else last_needed_layer(model, read)
    if not logits and stop is None and not read:
        raise UsageError("nothing to compute: no logits and no hooks to read")
    with HookedRun(model, read, edits, positions, stop_after=stop, store_dtype=store_dtype) as h:
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
    """The last dimension of each hook point, from one forward over a short probe text."""
    probe = lm.tokenizer(["width probe"], return_tensors="pt")
    acts = run(lm.model, dict(probe), names, positions=[-1], logits=False).acts
    return {h: int(acts[h].shape[-1]) for h in names}
