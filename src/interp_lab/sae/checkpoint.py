"""SAE checkpoints in the SAE Lens v6 on-disk layout (formats.md): ``cfg.json`` + ``sae_weights.safetensors``;
loading also reads EleutherAI sparsify checkpoints (``cfg.json`` + ``sae.safetensors``).

The input scales used in training are folded into the weights on save, so the checkpoint works on the
model's activations as they are: for inputs scaled by ``s_in`` and targets by ``s_out``,
W_enc -> s_in W_enc, W_dec -> W_dec / s_out, b_dec -> b_dec / s_out (latent values, and so thresholds,
unchanged; for an autoencoder s_in = s_out).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from interp_lab.errors import InputError
from interp_lab.io.atomic import atomic_dir
from interp_lab.sae.base import SAEConfig, SparseCoder, make_sae
from interp_lab.sae.config import SPARSIFY_WEIGHTS, WEIGHTS

CORE = ("W_enc", "b_enc", "W_dec", "b_dec")
# SAE Lens reads cfg.json's metadata as written only when it names a 6.x version; without one it takes the file
# for a pre-6.0 config and rebuilds the metadata from top-level keys, losing hook_name and model_name
# (sae_lens.loading.pretrained_sae_loaders.handle_config_defaulting).
SAELENS_FORMAT = "6.0.0"
# metadata keys of pre-6.0 SAE Lens configs, which kept them at the top level (hook_point: before hook_name)
LEGACY_METADATA = {"hook_name": ("hook_name", "hook_point"), "hook_name_out": ("hook_name_out",),
                   "model_name": ("model_name",), "context_size": ("context_size",), "prepend_bos": ("prepend_bos",),
                   "hook_head_index": ("hook_head_index", "hook_point_head_index"), "dataset_path": ("dataset_path",)}
# SAE Lens architecture -> (ours, transcoder?)
FROM_SAELENS = {"topk": ("topk", False), "standard": ("relu", False), "jumprelu": ("jumprelu", False),
                "transcoder": ("relu", True), "jumprelu_transcoder": ("jumprelu", True)}


def saelens_metadata(metadata: dict[str, Any] | None, *, transcoder: bool = False) -> dict[str, Any]:
    """``metadata`` as SAE Lens v6 reads it: its format version, no SAE Lens training version, no attention
    head, no model keyword arguments (what its evals unpack), unless ``metadata`` says otherwise; every
    key of ours (model_revision ...) kept."""
    base = {"sae_lens_version": SAELENS_FORMAT, "sae_lens_training_version": None, "hook_head_index": None,
            "model_from_pretrained_kwargs": {}}
    if transcoder:
        base["hook_head_index_out"] = None
    return {**base, **(metadata or {})}


def read_metadata(cfg: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a checkpoint's cfg.json: its ``metadata`` block (SAE Lens 6, interp-lab), else the
    top-level keys of a pre-6.0 SAE Lens config (``hook_point`` read as ``hook_name``)."""
    meta = cfg.get("metadata")
    out = dict(meta) if isinstance(meta, dict) else {}
    for key, old in LEGACY_METADATA.items():
        if out.get(key) is None:
            found = next((cfg[k] for k in old if cfg.get(k) is not None), None)
            if found is not None:
                out[key] = found
    return out


def saelens_files(sae: SparseCoder, *, scale_in: float = 1.0, scale_out: float | None = None,
                  metadata: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """cfg.json and the weights of ``sae`` in the SAE Lens layout, scales folded in."""
    c = sae.cfg
    scale_out = scale_in if scale_out is None else scale_out
    arch, extra = sae.saelens_architecture()
    cfg = {"architecture": arch, "d_in": c.d_in, "d_sae": c.d_sae, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": c.apply_b_dec_to_input, "normalize_activations": "none",
           "reshape_activations": "none", "metadata": saelens_metadata(metadata, transcoder=c.transcoder), **extra}
    if c.transcoder:
        cfg["d_out"] = c.d_out
    with torch.no_grad():
        weights = {"W_enc": sae.W_enc * scale_in, "b_enc": sae.b_enc.detach().clone(),
                   "W_dec": sae.W_dec / scale_out, "b_dec": sae.b_dec / scale_out, **sae.saelens_tensors()}
    return cfg, {k: v.float().contiguous() for k, v in weights.items()}


def save_sae(sae: SparseCoder, out: str | os.PathLike, *, scale_in: float = 1.0, scale_out: float | None = None,
             metadata: dict[str, Any] | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """Write ``out/cfg.json`` and ``out/sae_weights.safetensors`` (plus ``extra`` files by name), all or
    nothing."""
    from safetensors.torch import save_file

    cfg, weights = saelens_files(sae, scale_in=scale_in, scale_out=scale_out, metadata=metadata)
    with atomic_dir(out) as tmp:
        (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        save_file(weights, str(tmp / WEIGHTS))
        for name, data in (extra or {}).items():
            (tmp / name).write_bytes(data)
    return Path(out)


def _read_cfg(root: Path) -> tuple[Path, dict[str, Any]]:
    cfg_path = root / "cfg.json"
    if not cfg_path.is_file():
        raise InputError(root, "not an SAE checkpoint (no cfg.json)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(cfg_path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(cfg, dict):
        raise InputError(cfg_path, "expected a JSON object")
    return cfg_path, cfg


def _int(cfg_path: Path, cfg: dict[str, Any], key: str) -> int:
    v = cfg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise InputError(cfg_path, "expected a positive integer", field=key)
    return v


def _fill(sae: SparseCoder, w: dict[str, torch.Tensor], path: Path, names: dict[str, str]) -> None:
    """Copy file tensors into the SAE's parameters: ``names`` maps ours -> the file's."""
    with torch.no_grad():
        for ours, theirs in names.items():
            p = getattr(sae, ours)
            t = w.get(theirs)
            if ours == "W_enc" and theirs == "encoder.weight" and t is not None:
                t = t.T
            if t is None or tuple(t.shape) != tuple(p.shape):
                raise InputError(path, f"expected {theirs} of shape {tuple(p.shape)}"
                                 + ("" if t is None else f", got {tuple(t.shape)}"), field=theirs)
            p.copy_(t.float())


def load_sae(path: str | os.PathLike) -> SparseCoder:
    """An SAE or transcoder checkpoint: SAE Lens layout (written by interp-lab or SAE Lens; topk,
    standard, jumprelu, transcoder, jumprelu_transcoder) or EleutherAI sparsify (TopK SAEs and
    transcoders). Returned in inference mode (``eval()``)."""
    from safetensors.torch import load_file

    root = Path(path)
    cfg_path, cfg = _read_cfg(root)
    if "architecture" not in cfg and (root / SPARSIFY_WEIGHTS).is_file():
        return _load_sparsify(root, cfg_path, cfg)
    arch = cfg.get("architecture")
    if arch not in FROM_SAELENS:
        raise InputError(cfg_path, f"architecture {arch!r} is not supported (one of {', '.join(FROM_SAELENS)})",
                         field="architecture")
    ours, transcoder = FROM_SAELENS[arch]
    for key, ok in (("normalize_activations", "none"), ("reshape_activations", "none")):
        if cfg.get(key, ok) != ok:
            raise InputError(cfg_path, f"{cfg[key]!r} is not supported ({ok!r} is)", field=key)
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise InputError(cfg_path, "true is not supported", field="rescale_acts_by_decoder_norm")
    b_dec_in = bool(cfg.get("apply_b_dec_to_input", not transcoder))
    if transcoder and b_dec_in:
        raise InputError(cfg_path, "a transcoder cannot subtract b_dec from its input", field="apply_b_dec_to_input")
    kw: dict[str, Any] = {"architecture": ours, "d_in": _int(cfg_path, cfg, "d_in"), "d_sae": _int(cfg_path, cfg, "d_sae"),
                          "apply_b_dec_to_input": b_dec_in}
    if ours == "topk":
        kw["k"] = _int(cfg_path, cfg, "k")
    if transcoder:
        kw["d_out"] = _int(cfg_path, cfg, "d_out")
    sae = make_sae(SAEConfig(**kw))
    wpath = root / WEIGHTS
    if not wpath.is_file():
        raise InputError(root, f"no {WEIGHTS}")
    w = load_file(str(wpath))
    _fill(sae, w, wpath, {n: n for n in CORE})
    if ours == "jumprelu":
        t = w.get("threshold")
        if t is None or tuple(t.shape) != (sae.cfg.d_sae,):
            raise InputError(wpath, f"expected threshold of shape ({sae.cfg.d_sae},)", field="threshold")
        sae.load_saelens_tensors(w)
    return sae.eval()


def _load_sparsify(root: Path, cfg_path: Path, cfg: dict[str, Any]) -> SparseCoder:
    from safetensors.torch import load_file

    act = cfg.get("activation", "topk")
    if act != "topk":
        raise InputError(cfg_path, f"activation {act!r} is not supported (topk is)", field="activation")
    if cfg.get("skip_connection"):
        raise InputError(cfg_path, "skip connections (W_skip) are not supported", field="skip_connection")
    d_in = _int(cfg_path, cfg, "d_in")
    d_sae = cfg.get("num_latents") or d_in * _int(cfg_path, cfg, "expansion_factor")
    transcode = bool(cfg.get("transcode"))
    wpath = root / SPARSIFY_WEIGHTS
    w = load_file(str(wpath))
    d_out = None
    if transcode:
        if "W_dec" not in w:
            raise InputError(wpath, "expected W_dec", field="W_dec")
        d_out = int(w["W_dec"].shape[1])
    sae = make_sae(SAEConfig(architecture="topk", d_in=d_in, d_sae=d_sae, k=_int(cfg_path, cfg, "k"), d_out=d_out,
                             apply_b_dec_to_input=not transcode))
    _fill(sae, w, wpath, {"W_enc": "encoder.weight", "b_enc": "encoder.bias", "W_dec": "W_dec", "b_dec": "b_dec"})
    return sae.eval()
