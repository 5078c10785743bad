"""Load a model by registry name, local directory or Hugging Face id (torch imported here, lazily by callers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.errors import InterpLabError, UsageError
from interp_lab.models.fetch import Say, cached_info, model_dir, pull
from interp_lab.models.registry import lookup

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    """A causal LM ready for hooks, with what a manifest needs to know about it."""

    name: str  # as asked for
    model: Any  # transformers PreTrainedModel, eval mode
    tokenizer: Any
    source: str  # registry | local | hub
    path: str  # where the weights were read from
    revision: str | None  # GGUF sha256 (registry), commit hash (hub), weights sha256 (local)
    family: str
    n_layers: int
    d_model: int
    dtype: str
    info: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {"model": self.name, "source": self.source, "revision": self.revision, "family": self.family,
                "n_layers": self.n_layers, "d_model": self.d_model, "dtype": self.dtype}


def _weights_sha256(path: Path) -> str:
    """sha256 over the weight files of a local directory (sorted by name)."""
    h = hashlib.sha256()
    files = sorted([*path.glob("*.safetensors"), *path.glob("*.bin")])
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def _hub(name: str) -> str:
    """A Hugging Face id: its local snapshot if cached, else the id once the Hub answers for it (one quick
    request instead of transformers' minute of retries when there is no network)."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        return name
    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:
        pass
    try:
        HfApi().model_info(name, timeout=10)
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise UsageError(f"cannot load model {name!r}: not a registered name (interp-lab models list), not a "
                         f"local directory, and the Hugging Face Hub does not serve it here ({first})") from None
    return name


def load_model(name: str, *, dtype: str = "float32", say: Say | None = None) -> LoadedModel:
    """A registered name (fetched and converted once), a local directory, or a Hugging Face id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp_lab.models.hooks import family_of, n_layers

    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r} (use {', '.join(DTYPES)})")
    torch_dtype = getattr(torch, dtype)
    spec = lookup(name)
    if spec is not None:
        path = pull(spec, say=say)
        source, revision, info = "registry", spec.sha256, cached_info(spec) or {}
    elif Path(name).expanduser().is_dir():
        path = Path(name).expanduser()
        source, revision, info = "local", _weights_sha256(path), {}
    else:
        path, source, revision, info = _hub(name), "hub", None, {}
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a cached model loads in under a second: no bar needed
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except OSError as exc:
        hint = " (no network? registered names work offline: interp-lab models list)" if source == "hub" else ""
        raise InterpLabError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}{hint}") from None
    model.eval()
    if source == "hub":
        revision = getattr(model.config, "_commit_hash", None)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    fam = family_of(model)
    return LoadedModel(name=spec.name if spec else name, model=model, tokenizer=tokenizer, source=source,
                       path=str(path), revision=revision, family=fam.name, n_layers=n_layers(model),
                       d_model=int(model.config.hidden_size), dtype=dtype, info=info)


def describe(name: str) -> dict[str, Any]:
    """What interp-lab knows about a model name without loading it."""
    spec = lookup(name)
    if spec is None:
        return {"name": name, "registered": False,
                "kind": "local directory" if Path(name).expanduser().is_dir() else "Hugging Face id"}
    info = cached_info(spec)
    return {"name": spec.name, "registered": True, "family": spec.family, "description": spec.description,
            "revision": spec.sha256, "gguf_file": spec.gguf_file, "source": [p.requirement for p in spec.parts],
            "upstream": spec.upstream, "license": spec.license, "n_layers": spec.n_layers, "d_model": spec.d_model,
            "cached": info is not None, "cache_dir": str(model_dir(spec))}
