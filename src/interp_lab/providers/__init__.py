"""Evidence providers (architecture.md): each delivers evidence with provenance, never a ranking."""

from __future__ import annotations

import os
from dataclasses import dataclass

from interp_lab.errors import UsageError


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    source: str
    needs: str
    available: bool


PROVIDERS = {
    "synthetic": ProviderInfo("synthetic", "generated data with planted ground truth (tests, demos)", "core", True),
    "records": ProviderInfo("records", "activation-record JSONL / Parquet", "core", True),
    "features": ProviderInfo("features", "feature-dump JSONL", "core", True),
    "neuronpedia": ProviderInfo("neuronpedia", "Neuronpedia feature JSON", "requests", False),
    "saelens": ProviderInfo("saelens", "SAE Lens SAEs encoded on real activations", "sae-lens", False),
    "scope": ProviderInfo("scope", "named SAE suites via SAE Lens", "sae-lens", False),
    "hf": ProviderInfo("hf", "own forward hooks on a Hugging Face causal LM", "torch, transformers", True),
    "transformerlens": ProviderInfo("transformerlens", "TransformerLens caches", "transformer-lens", False),
    "nnsight": ProviderInfo("nnsight", "nnsight traces", "nnsight", False),
    "contrast": ProviderInfo("contrast", "contrast directions from scored prompts", "torch", False),
    "sae": ProviderInfo("sae", "latents of an SAE (interp-lab, SAE Lens or sparsify checkpoint) on a Hugging Face "
                               "causal LM", "torch, transformers", True),
}
ALIASES = {"toy": "synthetic", "jsonl": "features"}


def resolve_backend(backend: str | None, *, records: str | os.PathLike | None,
                    features: str | os.PathLike | None, model: str | None) -> str:
    """The backend to use. Synthetic data is used only when named."""
    if backend is not None:
        name = ALIASES.get(backend, backend)
        info = PROVIDERS.get(name)
        if info is None:
            raise UsageError(f"unknown backend {backend!r} (known: {', '.join(sorted(PROVIDERS))}, toy)")
        if not info.available:
            raise UsageError(f"backend {name!r} ({info.source}) is not available in this version of interp-lab")
        if name == "records" and records is None:
            raise UsageError("--backend records needs --records")
        if name == "features" and features is None:
            raise UsageError("--backend features needs --features")
        if name in ("hf", "sae") and model is None:
            raise UsageError(f"--backend {name} needs --model")
        return name
    if features is not None:
        return "features"
    if records is not None:
        return "records"
    if model is not None:
        return "hf"
    raise UsageError(
        "no evidence given: pass --model (a real model: interp-lab harvests and tests it), --records "
        "(activation records) or --features (a feature dump), or --backend synthetic for a demo on planted data"
    )
