"""SAE checkpoints in the SAE Lens v6 on-disk layout (formats.md): ``cfg.json`` + ``sae_weights.safetensors``.

The input scale used in training is folded into the weights on save, so the checkpoint works on the
model's activations as they are: for inputs scaled by ``s``, W_enc -> s W_enc, W_dec -> W_dec / s,
b_dec -> b_dec / s (latent values unchanged).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from interp_lab.errors import InputError
from interp_lab.io.atomic import atomic_dir
from interp_lab.sae.topk import TopKConfig, TopKSAE

WEIGHTS = "sae_weights.safetensors"


def save_sae(sae: TopKSAE, out: str | os.PathLike, *, scale: float = 1.0, metadata: dict[str, Any] | None = None,
             extra: dict[str, bytes] | None = None) -> Path:
    """Write ``out/cfg.json`` and ``out/sae_weights.safetensors`` (plus ``extra`` files by name), all or
    nothing."""
    from safetensors.torch import save_file

    c = sae.cfg
    cfg = {"architecture": c.architecture, "d_in": c.d_in, "d_sae": c.d_sae, "k": c.k, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "rescale_acts_by_decoder_norm": False, "metadata": metadata or {}}
    with torch.no_grad():
        weights = {"W_enc": (sae.W_enc * scale).contiguous(), "W_dec": (sae.W_dec / scale).contiguous(),
                   "b_enc": sae.b_enc.detach().clone(), "b_dec": (sae.b_dec / scale).contiguous()}
    with atomic_dir(out) as tmp:
        (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        save_file(weights, str(tmp / WEIGHTS))
        for name, data in (extra or {}).items():
            (tmp / name).write_bytes(data)
    return Path(out)


def load_sae(path: str | os.PathLike) -> TopKSAE:
    """A TopK checkpoint in the SAE Lens layout (written by interp-lab or by SAE Lens)."""
    from safetensors.torch import load_file

    root = Path(path)
    cfg_path = root / "cfg.json"
    if not cfg_path.is_file():
        raise InputError(root, "not an SAE checkpoint (no cfg.json)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(cfg_path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    arch = cfg.get("architecture")
    if arch != "topk":
        raise InputError(cfg_path, f"architecture {arch!r} is not supported yet (topk is)", field="architecture")
    for key in ("d_in", "d_sae", "k"):
        if not isinstance(cfg.get(key), int):
            raise InputError(cfg_path, "expected an integer", field=key)
    if not cfg.get("apply_b_dec_to_input", True):
        raise InputError(cfg_path, "apply_b_dec_to_input false is not supported", field="apply_b_dec_to_input")
    sae = TopKSAE(TopKConfig(d_in=cfg["d_in"], d_sae=cfg["d_sae"], k=cfg["k"]))
    w = load_file(str(root / WEIGHTS))
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            p = getattr(sae, name)
            if name not in w or tuple(w[name].shape) != tuple(p.shape):
                raise InputError(root / WEIGHTS, f"expected {name} of shape {tuple(p.shape)}", field=name)
            p.copy_(w[name].float())
    return sae
