"""Evidence providers (architecture.md): each delivers evidence with provenance, never a ranking.

A provider is found by name through the entry-point group ``interp_lab.providers`` (the built-in ones
register there too, in interp-lab's own pyproject.toml), so a third-party package adds ``--backend NAME``
with one line of its packaging::

    [project.entry-points."interp_lab.providers"]
    mysource = "my_package.provider:PROVIDER"

The object named (or a class, called without arguments) follows ``providers.base.FeatureProvider``:
``name``, ``source``, ``needs``, ``check(request)`` and ``provide(request, progress)``. This module reads
names and metadata only; a provider's own module is imported when it is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from interp_lab.errors import UsageError

GROUP = "interp_lab.providers"


@dataclass(frozen=True)
class ProviderInfo:
    """What ``--backend NAME`` is: where its evidence comes from, what it needs, where it is defined."""

    name: str
    source: str
    needs: str
    entry: str  # "module:attribute"
    builtin: bool = True
    planned: str | None = None  # not in this version: the issue that brings it

    def load(self) -> Any:
        """The provider object (a class named by the entry point is instantiated)."""
        import importlib

        module, _, attr = self.entry.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"backend {self.name!r}: its provider {self.entry} cannot be loaded ({exc})") from None
        provider = obj() if isinstance(obj, type) else obj
        missing = [a for a in ("name", "provide") if not hasattr(provider, a)]
        if missing:
            raise UsageError(f"backend {self.name!r}: {self.entry} is not a provider (no {', '.join(missing)})")
        return provider


_B = "interp_lab.providers.builtin:"
ENGINE_ONLY = ("a later issue; today these engines read activations for harvest --engine and export-transformerlens-"
               "records / export-nnsight-records, and inspect reads the model through interp-lab's own hooks")
# The built-in providers: the same names pyproject.toml registers, so a source checkout on PYTHONPATH
# (without installed metadata) has them too.
BUILTIN = {
    "synthetic": ProviderInfo("synthetic", "generated data with planted ground truth (tests, demos)", "core",
                              _B + "SYNTHETIC"),
    "records": ProviderInfo("records", "activation-record JSONL / Parquet", "core", _B + "RECORDS"),
    "features": ProviderInfo("features", "feature-dump JSONL", "core", _B + "FEATURES"),
    "neuronpedia": ProviderInfo("neuronpedia", "Neuronpedia feature JSON (API or saved responses)", "requests",
                                _B + "NEURONPEDIA"),
    "saelens": ProviderInfo("saelens", "SAE Lens SAEs (pretrained or a local directory) encoded on the model's "
                                       "activations", "sae-lens, torch, transformers", _B + "SAELENS"),
    "scope": ProviderInfo("scope", "named SAE suites (Gemma Scope, Gemma Scope 2, Qwen-Scope, Llama Scope) via "
                                   "SAE Lens", "sae-lens, torch, transformers", _B + "SCOPE"),
    "goodfire": ProviderInfo("goodfire", "Goodfire SDK feature search", "goodfire (and GOODFIRE_API_KEY)",
                             _B + "GOODFIRE"),
    "hf": ProviderInfo("hf", "own forward hooks on a Hugging Face causal LM", "torch, transformers", _B + "HF"),
    "sae": ProviderInfo("sae", "latents of an SAE (interp-lab, SAE Lens or sparsify checkpoint) on a Hugging "
                               "Face causal LM", "torch, transformers", _B + "SAE"),
    "transformerlens": ProviderInfo("transformerlens", "TransformerLens caches", "transformer-lens", "",
                                    planned=ENGINE_ONLY),
    "nnsight": ProviderInfo("nnsight", "nnsight traces", "nnsight", "", planned=ENGINE_ONLY),
}
ALIASES = {"toy": "synthetic", "jsonl": "features", "sae-lens": "saelens", "sae_lens": "saelens"}


def providers() -> dict[str, ProviderInfo]:
    """Every provider by name: the built-in ones, then those third-party packages register under the
    entry-point group ``interp_lab.providers`` (a package cannot replace a built-in name)."""
    found = dict(BUILTIN)
    for ep in _entry_points():
        if ep.name in found:
            continue  # the built-ins' own registrations, or a package claiming a built-in name
        dist = getattr(ep, "dist", None)
        found[ep.name] = ProviderInfo(ep.name, f"from the package {dist.name if dist else ep.module}",
                                      "its package", ep.value, builtin=False)
    return found


def _entry_points() -> list[Any]:
    return list(metadata.entry_points(group=GROUP))


def get_provider(name: str) -> Any:
    """The provider object of backend ``name`` (after aliases); one line for an unknown or planned one."""
    table = providers()
    canonical = ALIASES.get(name, name)
    info = table.get(canonical)
    if info is None:
        raise UsageError(f"unknown backend {name!r} (known: {', '.join(sorted(table))}; aliases: "
                         f"{', '.join(f'{a}={b}' for a, b in sorted(ALIASES.items()))})")
    if info.planned:
        raise UsageError(f"backend {canonical!r} ({info.source}) is not available in this version of interp-lab "
                         f"(planned: {info.planned})")
    return info.load()


def resolve_backend(backend: str | None, *, records: str | os.PathLike | None,
                    features: str | os.PathLike | None, model: str | None) -> str:
    """The backend's canonical name. Synthetic data is used only when named; without a name, the evidence
    given implies it (features, records, else hf with a model)."""
    if backend is not None:
        name = ALIASES.get(backend, backend)
        get_provider(name)  # unknown, planned or unloadable: one line now
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
