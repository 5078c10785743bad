"""Logit lens and tuned lens: what each layer's residual stream predicts.

The logit lens decodes ``blocks.{i}.hook_resid_post`` with the model's own
final norm (RMSNorm, LayerNorm or Gemma's offset RMSNorm: the module itself is
used, so its real formula applies) and unembedding, with Gemma's final logit
soft-capping when the config has one. The tuned lens (Belrose et al. 2023,
"Eliciting Latent Predictions from Transformers with the Tuned Lens") puts a
learned affine translator ``h + A h + b`` in front of that, one per layer,
trained to minimize KL(final || lens); ``A`` and ``b`` start at zero, so an
untrained tuned lens is the logit lens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interp_lab.io.atomic import atomic_dir
from interp_lab.models.hooked import run
from interp_lab.models.hooks import family_of, get_module


def decode(model, resid: torch.Tensor) -> torch.Tensor:
    """Logits from residual-stream vectors [..., d] through the model's final norm and unembedding."""
    norm = get_module(model, family_of(model).final_norm)
    logits = model.get_output_embeddings()(norm(resid))
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def kl_to_final(final_logits: torch.Tensor, lens_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_final || p_lens) per position, in nats (evidence.md's definition)."""
    logp = torch.log_softmax(final_logits.float(), -1)
    logq = torch.log_softmax(lens_logits.float(), -1)
    return (logp.exp() * (logp - logq)).sum(-1)


class TunedLens(nn.Module):
    """One affine translator per layer (identity + learned residual), for ``blocks.{i}.hook_resid_post``.

    Saved as lens.safetensors + lens.json, and in the ``tuned-lens`` package's format (config.json +
    params.pt, models/tuned_lens_format.py) beside them; ``load`` reads either. ``input_translator`` is
    tuned-lens's translator of the embedding output (``blocks.0.hook_resid_pre``): kept from a tuned-lens
    checkpoint and written back, never trained here (zero: the logit lens there). The last layer's
    translator stays zero: its resid_post decoded is the model's output, and tuned-lens has no place for it.
    """

    def __init__(self, n_layers: int, d_model: int, model_name: str = "", revision: str | None = None,
                 unembed_hash: str | None = None):
        super().__init__()
        self.model_name, self.revision, self.unembed_hash = model_name, revision, unembed_hash
        self.source_format = "interp-lab"  # or "tuned-lens": what ``load`` read
        self.translators = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layers))
        self.input_translator = nn.Linear(d_model, d_model)
        for t in [*self.translators, self.input_translator]:
            nn.init.zeros_(t.weight)
            nn.init.zeros_(t.bias)

    @property
    def n_layers(self) -> int:
        return len(self.translators)

    @property
    def d_model(self) -> int:
        return self.translators[0].in_features

    def forward(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        return resid + self.translators[layer](resid)

    def save(self, path: str | os.PathLike, metrics: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        from interp_lab.models import tuned_lens_format

        with atomic_dir(path) as tmp:
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp / "lens.safetensors"))
            cfg = {"kind": "tuned_lens", "model": self.model_name, "revision": self.revision,
                   "n_layers": self.n_layers, "d_model": self.d_model, "unembed_hash": self.unembed_hash,
                   "metrics": metrics or {}}
            (tmp / "lens.json").write_text(json.dumps(cfg, indent=2) + "\n")
            tuned_lens_format.write(tmp, self.tuned_lens_translators(), model_name=self.model_name,
                                    revision=self.revision, unembed=self.unembed_hash)
        return Path(path)

    def tuned_lens_translators(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) per translator in tuned-lens's order: the embedding's, then layers 0 .. L-2."""
        from interp_lab.errors import UsageError

        last = self.translators[-1]
        if last.weight.abs().max() > 0 or last.bias.abs().max() > 0:
            raise UsageError(f"the tuned lens has a translator at the last layer ({self.n_layers - 1}), which the "
                             "tuned-lens format has no place for (the model's output needs none)")
        return [(t.weight, t.bias) for t in [self.input_translator, *self.translators[:-1]]]

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedLens:
        """A lens saved by ``save`` (lens.json), or by the tuned-lens package (config.json + params.pt)."""
        from safetensors.torch import load_file

        from interp_lab.errors import InputError
        from interp_lab.models import tuned_lens_format

        p = Path(path)
        if not (p / "lens.json").is_file():
            if tuned_lens_format.is_tuned_lens_dir(p):
                return cls.from_tuned_lens(p)
            raise InputError(p, "not a tuned lens (no lens.json, nor tuned-lens's config.json + params.pt)")
        cfg = json.loads((p / "lens.json").read_text())
        lens = cls(cfg["n_layers"], cfg["d_model"], cfg.get("model", ""), cfg.get("revision"), cfg.get("unembed_hash"))
        missing, unexpected = lens.load_state_dict(load_file(str(p / "lens.safetensors")), strict=False)
        if unexpected or set(missing) - {"input_translator.weight", "input_translator.bias"}:  # older: no input
            raise InputError(p / "lens.safetensors", f"tensors do not fit lens.json (missing {missing}, unexpected "
                                                     f"{unexpected})")
        return lens

    @classmethod
    def from_tuned_lens(cls, path: str | os.PathLike) -> TunedLens:
        """A lens saved by the tuned-lens package (or by ``save``): its translator ``i`` >= 1 becomes layer
        ``i - 1``'s, its translator 0 the ``input_translator``."""
        from interp_lab.models import tuned_lens_format

        cfg, translators = tuned_lens_format.read(path)
        lens = cls(cfg["num_hidden_layers"], cfg["d_model"], cfg.get("base_model_name_or_path") or "",
                   cfg.get("base_model_revision"), cfg.get("unembed_hash"))
        lens.source_format = "tuned-lens"
        with torch.no_grad():
            for target, (w, b) in zip([lens.input_translator, *lens.translators[:-1]], translators):
                target.weight.copy_(w)
                target.bias.copy_(b)
        return lens

    def check_model(self, lm, where: str) -> list[str]:
        """Whether this lens was made for ``lm``: a different depth or width is an error, and so is another model's
        name on an interp-lab lens whose unembedding hash does not vouch for it; a tuned-lens checkpoint of
        another name or unembedding (a different conversion of the same model, say) gets a note, as the
        package itself warns and goes on."""
        from interp_lab.errors import UsageError
        from interp_lab.models.tuned_lens_format import unembed_hash

        if (self.n_layers, self.d_model) != (lm.n_layers, lm.d_model):
            raise UsageError(f"{where}: a lens of {self.n_layers} layers of width {self.d_model}; {lm.name} has "
                             f"{lm.n_layers} of width {lm.d_model}")
        same = self.unembed_hash is not None and self.unembed_hash == unembed_hash(lm.model)
        if self.model_name and self.model_name != lm.name and not same:
            if self.source_format == "interp-lab":
                raise UsageError(f"{where}: a lens trained on {self.model_name}, not {lm.name}")
            return [f"{where}: a tuned-lens checkpoint for {self.model_name!r}, read on {lm.name}"
                    + ("" if self.unembed_hash is None else " (its unembed_hash differs from this model's)")]
        if self.unembed_hash is not None and not same:
            return [f"{where}: its unembed_hash differs from {lm.name}'s unembedding: it may have been trained on "
                    "another revision of the model"]
        return []


def _batches(lm, texts: Sequence[str], context: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    for i in range(0, len(texts), batch_size):
        enc = lm.tokenizer(list(texts[i: i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                           max_length=context)
        yield {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def layer_residuals(lm, inputs: dict[str, torch.Tensor], layers: Sequence[int]):
    """(final logits [B, T, V], {layer: resid_post [B, T, d]}) in one forward."""
    res = run(lm.model, inputs, [f"blocks.{i}.hook_resid_post" for i in layers])
    return res.logits, {i: res.acts[f"blocks.{i}.hook_resid_post"] for i in layers}


def evaluate(lm, texts: Sequence[str], layers: Sequence[int], tuned: TunedLens | None = None, *,
             context: int = 128, batch_size: int = 8, progress=None) -> dict[int, dict[str, float]]:
    """Mean KL to the final distribution per layer (over all real tokens), logit lens and tuned lens;
    ``progress(stage, done, total)`` hears of the documents read."""
    sums = {i: {"logit_lens": 0.0, "tuned_lens": 0.0} for i in layers}
    count = 0
    with torch.inference_mode():
        for b, inputs in enumerate(_batches(lm, texts, context, batch_size)):
            if progress is not None:
                progress("lens KL (documents)", b * batch_size, len(texts))
            final, resid = layer_residuals(lm, inputs, layers)
            mask = inputs["attention_mask"].bool()
            count += int(mask.sum())
            for i in layers:
                sums[i]["logit_lens"] += float(kl_to_final(final, decode(lm.model, resid[i]))[mask].sum())
                if tuned is not None:
                    tl = decode(lm.model, tuned(resid[i], i))
                    sums[i]["tuned_lens"] += float(kl_to_final(final, tl)[mask].sum())
    return {i: {k: v / count for k, v in s.items() if tuned is not None or k == "logit_lens"} for i, s in sums.items()}


def train_tuned_lens(lm, texts: Sequence[str], layers: Sequence[int] | None = None, *, steps: int = 200,
                     lr: float = 1e-3, context: int = 128, batch_size: int = 8, tokens_per_step: int = 512,
                     seed: int = 0, init: str = "lstsq", ridge: float = 1e-3, log=None) -> TunedLens:
    """Train translators for ``layers`` (default: all but the last) against the final logits with KL.

    Activations and final log-probabilities are computed once per text batch
    and sampled ``tokens_per_step`` at a time; each translator is trained
    on its own (the layers do not interact), with Adam. ``init="lstsq"``
    starts from a ridge regression onto the last layer's residual stream;
    ``"zero"`` starts from the logit lens (as in the paper).
    """
    torch.manual_seed(seed)
    from interp_lab.models.tuned_lens_format import unembed_hash

    L = lm.n_layers
    layers = list(range(L - 1)) if layers is None else [i for i in layers if i < L - 1]  # the last needs none
    lens = TunedLens(L, lm.d_model, lm.name, lm.revision, unembed_hash(lm.model))
    acts: dict[int, list[torch.Tensor]] = {i: [] for i in {*layers, L - 1}}
    finals: list[torch.Tensor] = []
    with torch.inference_mode():
        for inputs in _batches(lm, texts, context, batch_size):
            final, resid = layer_residuals(lm, inputs, sorted(acts))
            mask = inputs["attention_mask"].bool()
            finals.append(torch.log_softmax(final[mask].float(), -1))
            for i in acts:
                acts[i].append(resid[i][mask])
    target = torch.cat(finals)
    last = torch.cat(acts[L - 1])
    if init == "lstsq":
        # start each translator at the ridge regression of (last resid - h) on h: a cheap, good
        # starting point that the KL steps then refine
        for i in layers:
            x = torch.cat(acts[i])
            xb = torch.cat([x, torch.ones(len(x), 1)], 1).double()
            gram = xb.T @ xb
            gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram, xb.T @ (last - x).double())
            with torch.no_grad():
                lens.translators[i].weight.copy_(sol[:-1].T.float())
                lens.translators[i].bias.copy_(sol[-1].float())
    gen = torch.Generator().manual_seed(seed)
    for p in lm.model.parameters():
        p.requires_grad_(False)
    for i in layers:
        x = torch.cat(acts[i]).clone()
        acts[i] = []
        if not steps:
            continue
        translator = lens.translators[i]
        opt = torch.optim.Adam(translator.parameters(), lr=lr)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (min(tokens_per_step, len(x)),), generator=gen)
            h = x[idx]
            logq = torch.log_softmax(decode(lm.model, h + translator(h)).float(), -1)
            logp = target[idx]
            loss = (logp.exp() * (logp - logq)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if log:
            log(f"layer {i}: KL {float(loss.detach()) if steps else float('nan'):.4f} after {steps} steps")
    return lens


def middle_layers(n_layers: int) -> list[int]:
    """Layers strictly between the first and the last quarter of the depth (evidence.md): 8..22 of 30."""
    return [i for i in range(n_layers) if n_layers / 4 <= i < 3 * n_layers / 4]


def token_ids(tokenizer, tokens: Sequence[str]) -> list[int]:
    """Vocabulary ids of single tokens given as text (e.g. " metres"); a text that is several tokens is refused."""
    from interp_lab.errors import UsageError

    ids = []
    for t in tokens:
        enc = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise UsageError(f"--tokens: {t!r} is {len(enc)} tokens for this tokenizer, not one")
        ids.append(enc[0])
    return ids


METRICS = ("prob", "logit_diff")


def check_metric(metric: str, n_tokens: int) -> None:
    """``metric`` is one lens_table computes, with the tokens it needs (checked before any model loads)."""
    from interp_lab.errors import UsageError

    if metric not in METRICS:
        raise UsageError(f"--metric {metric!r}: use prob or logit_diff")
    if metric == "prob" and n_tokens < 1 or metric == "logit_diff" and n_tokens != 2:
        raise UsageError("--metric prob needs --tokens A; logit_diff needs --tokens A,B")


def lens_table(lm, prompt: str, layers: Sequence[int], *, tuned: TunedLens | None = None,
               metric: str = "prob", tokens: Sequence[str] = (), top: int = 5) -> dict[str, Any]:
    """Per layer: top tokens at the last position, mean KL to the final distribution, and the metric
    (probability of the first token, or logit difference first - second) at every position."""
    check_metric(metric, len(tokens))
    ids = token_ids(lm.tokenizer, tokens)
    inputs = lm.tokenizer([prompt], return_tensors="pt")
    with torch.inference_mode():
        final, resid = layer_residuals(lm, dict(inputs), layers)
        rows = []
        for i in layers:
            h = resid[i] if tuned is None else tuned(resid[i], i)
            logits = decode(lm.model, h)[0].float()
            probs = torch.softmax(logits, -1)
            if metric == "prob":
                values = probs[:, ids[0]]
            else:
                values = logits[:, ids[0]] - logits[:, ids[1]]
            best = probs[-1].topk(top)
            rows.append({
                "layer": i,
                "top_tokens": [(lm.tokenizer.decode([int(t)]), round(float(p), 4))
                               for p, t in zip(best.values, best.indices)],
                "kl_to_final": round(float(kl_to_final(final[0], logits).mean()), 4),
                "metric": [round(float(v), 5) for v in values],
            })
    final_probs = torch.softmax(final[0, -1].float(), -1)
    tokens_text = [lm.tokenizer.decode([int(t)]) for t in inputs["input_ids"][0]]
    return {"prompt": prompt, "tokens": tokens_text, "lens": "tuned" if tuned is not None else "logit",
            "metric": metric, "metric_tokens": list(tokens), "rows": rows,
            "final_top": [(lm.tokenizer.decode([int(t)]), round(float(p), 4))
                          for p, t in zip(*final_probs.topk(top))]}
