"""Engines that read hook points during a forward pass, all under interp-lab's hook names (models/hooks.py).

``hooks``            interp-lab's own PyTorch hooks (models/hooked.py), the default.
``transformerlens``  TransformerLens's ``TransformerBridge`` booted on the loaded Hugging Face model (offline:
                     ``boot_transformers(name, hf_model=..., tokenizer=...)``), read with ``run_with_cache``
                     for the asked hooks only (``names_filter``), stopping after the last needed block.
``nnsight``          an ``nnsight.NNsight`` trace of the same model saving module outputs and inputs, found
                     from the hook names through the family tables of models/hooks.py, or from an
                     activation path (models/activation_path.py); the trace stops after the last one.

Every engine takes right-padded token ids and their attention mask and returns ``{hook: [batch, tokens,
width]}``. The TransformerLens and nnsight engines wrap a twin of the model (its module tree copied, every
parameter and buffer shared, so no weights are copied): the bridge replaces modules and nnsight patches their
``forward``, and the caller's model is left exactly as it was. torch is imported by callers of this module.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Sequence
from typing import Any

import torch

from interp_lab.errors import UsageError
from interp_lab.models.activation_path import FLAG, ActivationPath, parse_activation_path, resolve
from interp_lab.models.hooked import last_needed_layer, run
from interp_lab.models.hooks import HookPoint, family_of, hook_name, parse

ENGINES = ("hooks", "transformerlens", "nnsight")
# engine -> (module to find, what to call it): the extra of the same name installs it
_PACKAGE = {"transformerlens": ("transformer_lens", "TransformerLens"), "nnsight": ("nnsight", "nnsight")}


def require(engine: str) -> None:
    """One line if ``engine`` is unknown or its package is not installed (naming the extra)."""
    if engine not in ENGINES:
        raise UsageError(f"unknown --engine {engine!r} (use {', '.join(ENGINES)})")
    if engine in _PACKAGE:
        module, label = _PACKAGE[engine]
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--engine {engine} needs {label}: pip install 'interp-lab[{engine}]'")


def open_engine(engine: str, lm: Any) -> Engine:
    """The engine ``engine`` on the ``LoadedModel`` ``lm``."""
    require(engine)
    return {"hooks": HooksEngine, "transformerlens": TransformerLensEngine, "nnsight": NnsightEngine}[engine](lm)


def model_name(engine: str, name: str) -> str:
    """With the TransformerLens engine, TransformerLens's short names (``gpt2-small``) stand for the Hugging Face
    id they alias (``gpt2``), unless interp-lab knows the name itself (registered, or a local directory)."""
    from pathlib import Path

    from interp_lab.models.registry import lookup

    if engine != "transformerlens" or lookup(name) is not None or Path(name).expanduser().is_dir():
        return name
    from transformer_lens.supported_models import MODEL_ALIASES

    return next((official for official, aliases in MODEL_ALIASES.items() if name in aliases), name)


def twin(model: Any) -> Any:
    """A copy of ``model``'s module tree that shares every parameter and buffer with it (no weights copied)."""
    memo: dict[int, Any] = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


class Engine:
    """Reads hook points; ``name`` is the engine, ``source`` what activation records say they came from."""

    name = ""
    source = ""

    def __init__(self, lm: Any):
        self.lm = lm

    def read(self, ids: torch.Tensor, mask: torch.Tensor, names: Sequence[str],
             store_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``{hook: [batch, tokens, width]}`` for the hook ``names`` (in ``store_dtype`` when given)."""
        raise NotImplementedError


class HooksEngine(Engine):
    name, source = "hooks", "hf"

    def read(self, ids, mask, names, store_dtype=None):
        return run(self.lm.model, {"input_ids": ids, "attention_mask": mask}, names, logits=False,
                   store_dtype=store_dtype, flat=True).acts  # per-head hooks as [.., heads*d_head]


def _cast(acts: dict[str, torch.Tensor], store_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    return {k: (v.to(store_dtype) if store_dtype is not None else v) for k, v in acts.items()}


def _tl_name(name: str) -> str:
    """TransformerLens's name of an interp-lab hook. Ours end where TransformerLens's do, but for a norm:
    interp-lab's ``*.hook_normalized`` is the norm module's output (scaled by its weight); TransformerLens's
    ``hook_normalized`` comes before the weight, and its ``hook_out`` is the module's output."""
    return name[: -len("hook_normalized")] + "hook_out" if name.endswith(".hook_normalized") else name


class TransformerLensEngine(Engine):
    name = source = "transformerlens"

    def __init__(self, lm):
        super().__init__(lm)
        from transformer_lens.model_bridge import TransformerBridge

        try:
            self.bridge = TransformerBridge.boot_transformers(lm.name, hf_model=twin(lm.model),
                                                              tokenizer=copy.deepcopy(lm.tokenizer))
        except Exception as exc:  # an architecture the bridge does not know, or a bridge bug: one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise UsageError(f"TransformerLens cannot bridge {lm.name} ({lm.family}): {first}") from None
        self.n_layers = lm.n_layers

    def read(self, ids, mask, names, store_dtype=None):
        tl = {n: _tl_name(n) for n in names}
        for n in names:
            parse(n, self.lm.model)  # the same names, and the same errors, as the hooks engine
        missing = [n for n, t in tl.items() if t not in self.bridge.hook_dict]
        if missing:
            raise UsageError(f"TransformerLens's bridge of {self.lm.name} has no hook {tl[missing[0]]!r} "
                             f"(for {missing[0]})")
        last = last_needed_layer(self.lm.model, names)
        stop = None if last is None or last + 1 >= self.n_layers else last + 1
        with torch.inference_mode():
            _, cache = self.bridge.run_with_cache(ids, attention_mask=mask, names_filter=list(tl.values()),
                                                  stop_at_layer=stop, return_type=None)
        out = {n: cache[t] for n, t in tl.items()}
        for n, t in out.items():  # a hook of another layout (per head, query x key) is not what ours give
            if t.dim() != 3 or t.shape[:2] != ids.shape:
                raise UsageError(f"--engine transformerlens: {tl[n]} gives {tuple(t.shape)}, not [batch, tokens, "
                                 f"width] = [{ids.shape[0]}, {ids.shape[1]}, d] as {n} does")
        return _cast(out, store_dtype)


# the order in which a block computes what the hooks read (parallel blocks: attention before the MLP)
_ORDER = {"resid_pre": 0, "attn_out": 1, "mlp_post": 2, "mlp_out": 3, "resid_post": 4}


class NnsightEngine(Engine):
    name = source = "nnsight"

    def __init__(self, lm):
        super().__init__(lm)
        from nnsight import NNsight

        self.model = twin(lm.model)
        self.traced = NNsight(self.model)
        self.fam = family_of(lm.model)

    # ------------------------------------------------------------------ where each hook is read

    def _split(self, path: str) -> tuple[str | int, ...]:
        return tuple(int(p) if p.isdigit() else p for p in path.split("."))

    def site(self, point: HookPoint) -> tuple[tuple[str | int, ...], str, int | None]:
        """(module steps, output / input, index) of a hook point that is read directly (not resid_mid)."""
        fam = self.fam
        if point.kind == "embed":
            return self._split(fam.embed), "output", 0
        if point.kind == "ln_final":
            return self._split(fam.final_norm), "output", 0
        block = (*self._split(fam.layers), point.layer)
        where = {"resid_pre": ((), "input", None), "resid_post": ((), "output", 0),
                 "attn_out": (self._split(fam.attn_out), "output", 0),
                 "mlp_out": (self._split(fam.mlp_out), "output", 0),
                 "mlp_post": (self._split(fam.neurons), "input", None)}.get(point.kind)
        if where is None:
            raise UsageError(f"--engine nnsight does not read {point.name} yet (it reads hook_embed, "
                             "ln_final.hook_normalized and blocks.N.{hook_resid_pre,hook_attn_out,hook_resid_mid,"
                             "mlp.hook_post,hook_mlp_out,hook_resid_post})")
        rel, acc, index = where
        return (*block, *rel), acc, index

    def read(self, ids, mask, names, store_dtype=None):
        points = [parse(n, self.lm.model) for n in names]
        direct: dict[str, HookPoint] = {}
        for p in points:
            if p.kind == "resid_mid":  # resid_pre + attn_out, as the hooks engine computes it
                for kind in ("resid_pre", "attn_out"):
                    q = HookPoint(hook_name(kind, p.layer), kind, p.layer)
                    direct.setdefault(q.name, q)
            else:
                direct.setdefault(p.name, p)

        def order(p: HookPoint) -> tuple[float, int]:
            return (-1.0, 0) if p.kind == "embed" else (float("inf"), 0) if p.kind == "ln_final" else \
                (float(p.layer), _ORDER[p.kind])

        plan = [(p.name, *self.site(p)) for p in sorted(direct.values(), key=order)]
        got = self._trace(ids, mask, plan)
        out = {}
        for p in points:
            if p.kind == "resid_mid":
                out[p.name] = got[hook_name("resid_pre", p.layer)] + got[hook_name("attn_out", p.layer)]
            else:
                out[p.name] = got[p.name]
        return _cast(out, store_dtype)

    def resolve(self, path: str | ActivationPath) -> tuple[Any, ActivationPath]:
        """The module an activation path names in this model, and the path as resolved."""
        parsed = parse_activation_path(path) if isinstance(path, str) else path
        return resolve(self.model, parsed)

    def read_path(self, ids: torch.Tensor, mask: torch.Tensor, path: str | ActivationPath) -> torch.Tensor:
        """[batch, tokens, width] at an activation path (``transformer.h[6].output[0]``)."""
        _, resolved = self.resolve(path)
        return self._trace(ids, mask, [(resolved.text, resolved.steps, resolved.where, resolved.index)])[
            resolved.text]

    # ------------------------------------------------------------------ the trace

    def _envoy(self, steps: Sequence[str | int]) -> Any:
        env = self.traced
        for s in steps:  # steps are submodule names and indexes checked against the model (resolve / tables)
            env = env[s] if isinstance(s, int) else getattr(env, s)
        return env

    def _trace(self, ids, mask, plan: list[tuple[str, tuple, str, int | None]]) -> dict[str, torch.Tensor]:
        """Save each (key, module steps, output / input, index) of ``plan`` (in forward order) in one trace
        that stops after the last; pick the outputs / inputs asked for and check their shapes."""
        import nnsight

        envoys = [(key, self._envoy(steps), where, index) for key, steps, where, index in plan]
        saved: dict[str, Any] = {}
        with torch.inference_mode():
            with self.traced.trace(input_ids=ids, attention_mask=mask, use_cache=False) as tracer:
                for key, env, where, index in envoys:
                    saved[key] = nnsight.save(env.output if where == "output" else
                                              env.input if index is None else env.inputs)
                tracer.stop()
        out = {}
        for key, _, where, index in plan:
            value = _pick(saved[key], where, index, key)
            if not isinstance(value, torch.Tensor) or value.dim() != 3 or value.shape[:2] != ids.shape:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise UsageError(f"{key}: gives {shape}, not [batch, tokens, width] = [{ids.shape[0]}, "
                                 f"{ids.shape[1]}, d]")
            out[key] = value
        return out


def _pick(value: Any, where: str, index: int | None, key: str) -> Any:
    """The output ``[index]`` of a module (a lone tensor is its own ``output[0]``), or its ``index``-th
    positional input (``value`` is then nnsight's ``(args, kwargs)``)."""
    if where == "input":
        if index is None:
            return value
        args = value[0]
        if index >= len(args):
            raise UsageError(f"{FLAG} {key}: the module gets {len(args)} positional inputs, no input[{index}]")
        return args[index]
    if isinstance(value, (tuple, list)):
        if index is None:
            raise UsageError(f"{FLAG} {key}: the module returns {len(value)} outputs; pick one, e.g. .output[0]")
        if index >= len(value):
            raise UsageError(f"{FLAG} {key}: the module returns {len(value)} outputs, no output[{index}]")
        return value[index]
    if index not in (None, 0):
        raise UsageError(f"{FLAG} {key}: the module returns one tensor, so output[0] is all there is")
    return value


def site_of_path(model: Any, path: ActivationPath) -> tuple[int, str]:
    """(layer, feature kind) of a resolved activation path that reads a block's output (the residual stream
    after it, ``L{i}:R{dim}``) or its MLP neurons (the down projection's input, ``L{i}:N{index}``): the two
    sites activation records have feature ids for (its index is checked when the trace reads it). One line for
    any other path, naming this model's two forms."""
    fam = family_of(model)
    layers = tuple(fam.layers.split("."))
    neurons = tuple(int(p) if p.isdigit() else p for p in fam.neurons.split("."))
    steps = path.steps
    if len(steps) > len(layers) and steps[: len(layers)] == layers and isinstance(steps[len(layers)], int):
        layer, rest = steps[len(layers)], steps[len(layers) + 1:]
        if rest == () and path.where == "output":
            return layer, "R"
        if rest == neurons and path.where == "input":
            return layer, "N"
    raise UsageError(f"{FLAG} {path.text}: activation records have feature ids for a block's output "
                     f"(L{{i}}:R{{dim}}, e.g. {fam.layers}.6.output[0]) and for its MLP neurons (L{{i}}:N{{index}}, "
                     f"e.g. {fam.layers}.6.{fam.neurons}.input), not for {path.module}.{path.where}")
