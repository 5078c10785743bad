"""The ``tuned-lens`` package's on-disk format (AlignmentResearch/tuned-lens 0.1 and later: ``TunedLens.save``,
``TunedLens.from_model_and_pretrained``), read and written without the package.

A directory with two files:

- ``config.json``: ``TunedLensConfig.to_dict()``: ``base_model_name_or_path``, ``d_model``,
  ``num_hidden_layers``, ``bias``, ``base_model_revision``, ``unembed_hash`` (sha256 of the unembedding
  matrix printed with one decimal: tuned-lens's ``tensor_hash``) and ``lens_type`` ``"linear_tuned_lens"``;
- ``params.pt``: ``torch.save`` of the ``layer_translators`` state dict: ``{i}.weight`` [d, d] and
  ``{i}.bias`` [d] for i in 0 .. num_hidden_layers - 1. Translator ``i`` reads ``hidden_states[i]`` of a
  transformers forward: 0 is the embedding output (``blocks.0.hook_resid_pre``), ``i`` >= 1 is
  ``blocks.{i-1}.hook_resid_post``; the last layer's output has none. Each adds its output to its input
  (``h + A h + b``) before the model's final norm and unembedding.

``params.pt`` is a pickle: it is read with ``torch.load(weights_only=True)`` only, which builds tensors and
plain containers and refuses any other object, and then checked key by key. The package writes no
safetensors file (through its latest release, 2025-08); neither does this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from interp_lab.errors import InputError

CONFIG = "config.json"
PARAMS = "params.pt"
LENS_TYPE = "linear_tuned_lens"


def unembed_hash(model) -> str:
    """tuned-lens's ``Unembed.unembedding_hash``: sha256 of the unembedding matrix as numpy prints it with one
    decimal (numpy's default print options, whatever the caller has set)."""
    import numpy as np

    w = model.get_output_embeddings().weight.detach().cpu().float().numpy()
    with np.printoptions(precision=1, threshold=1000, edgeitems=3, linewidth=75, suppress=False):
        return hashlib.sha256(str.encode(np.array_str(w, precision=1))).hexdigest()


def is_tuned_lens_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / CONFIG).is_file() and (p / PARAMS).is_file()


def write(path: str | os.PathLike, translators: list[tuple[torch.Tensor, torch.Tensor]], *, model_name: str,
          revision: str | None, unembed: str | None) -> None:
    """Write ``config.json`` and ``params.pt`` into the directory ``path`` (a staging directory: the caller
    renames it into place); ``translators`` in tuned-lens's order, (weight [d, d], bias [d]) each."""
    p = Path(path)
    d = int(translators[0][0].shape[0])
    state = {}
    for i, (w, b) in enumerate(translators):
        state[f"{i}.weight"] = w.detach().float().contiguous().clone()
        state[f"{i}.bias"] = b.detach().float().contiguous().clone()
    torch.save(state, p / PARAMS)
    config = {"base_model_name_or_path": model_name, "d_model": d, "num_hidden_layers": len(translators),
              "bias": True, "base_model_revision": revision, "unembed_hash": unembed, "lens_type": LENS_TYPE}
    (p / CONFIG).write_text(json.dumps(config))


def read(path: str | os.PathLike) -> tuple[dict[str, Any], list[tuple[torch.Tensor, torch.Tensor]]]:
    """(config, translators in tuned-lens's order as float32 (weight, bias)) of a tuned-lens directory; a file
    that is not this format is one line naming it and the field."""
    p = Path(path)
    cfg_path, params_path = p / CONFIG, p / PARAMS
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(cfg_path, f"not a tuned-lens config ({exc})") from None
    if not isinstance(cfg, dict):
        raise InputError(cfg_path, "not a tuned-lens config (expected a JSON object)")
    if cfg.get("lens_type", LENS_TYPE) != LENS_TYPE:
        raise InputError(cfg_path, f"lens_type {cfg['lens_type']!r}: only {LENS_TYPE!r} is read", field="lens_type")
    for key in ("d_model", "num_hidden_layers"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg.get(key), bool) or cfg[key] < 1:
            raise InputError(cfg_path, "expected a positive integer (a tuned-lens 0.1+ config)", field=key)
    bias = cfg.get("bias", True)
    if not isinstance(bias, bool):
        raise InputError(cfg_path, "expected true or false", field="bias")
    try:
        state = torch.load(params_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses every object that is not a tensor or a plain container
        called = re.search(r"GLOBAL ([\w.]+)", str(exc))
        why = f"its pickle calls {called.group(1)}" if called else "not a torch checkpoint of tensors"
        raise InputError(params_path, f"refused: {why} (only tensors are read: torch.load(weights_only=True))") \
            from None
    if not isinstance(state, dict):
        raise InputError(params_path, f"expected a state dict of tensors, got {type(state).__name__}")
    n, d = cfg["num_hidden_layers"], cfg["d_model"]
    shapes = {f"{i}.weight": (d, d) for i in range(n)} | ({f"{i}.bias": (d,) for i in range(n)} if bias else {})
    for key in state:
        if key not in shapes:
            raise InputError(params_path, f"unexpected tensor (the config says {n} layers of width {d}, "
                                          f"bias {str(bias).lower()})", field=str(key))
    out = []
    for i in range(n):
        pair = []
        for key in (f"{i}.weight", f"{i}.bias"):
            if key not in shapes:  # a lens without biases: zero
                pair.append(torch.zeros(d))
                continue
            t = state.get(key)
            if not isinstance(t, torch.Tensor):
                raise InputError(params_path, "missing" if t is None else f"not a tensor ({type(t).__name__})",
                                 field=key)
            if tuple(t.shape) != shapes[key] or not t.is_floating_point():
                raise InputError(params_path, f"expected a float tensor of shape {list(shapes[key])}, got "
                                              f"{t.dtype} {list(t.shape)}", field=key)
            pair.append(t.float())
        out.append((pair[0], pair[1]))
    return cfg, out
