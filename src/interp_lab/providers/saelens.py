"""``--backend saelens`` and ``--backend scope``: an SAE Lens SAE, its latents encoded on the model's own
activations and ranked and tested like interp-lab's own (``--backend sae``).

The SAE comes from a local directory (SAE Lens's ``save_model`` layout; read by interp-lab's loader, so
SAE Lens need not be installed) or, by release name and SAE id, from SAE Lens's pretrained directory:
``SAE.from_pretrained(release, sae_id)`` once, then saved in that layout under the cache
(``$INTERP_LAB_CACHE/saelens/<release>/<sae_id>``) and read from there on every later run.

``scope`` names a suite instead of a release: a table from the suite (Gemma Scope, Gemma Scope 2,
Qwen-Scope, Llama Scope) to the release-name prefix SAE Lens gives its releases; the release is chosen from
the model and the hook when not given, and a hook name (``blocks.12.hook_resid_post``) stands for the
suite's SAE at that layer. Everything else is the saelens path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from interp_lab.errors import UsageError
from interp_lab.io.atomic import atomic_dir
from interp_lab.io.cache import cache_dir
from interp_lab.providers.base import ModelPlan, Request

CFG = "cfg.json"


@dataclass(frozen=True)
class Suite:
    """A named SAE suite: the prefix of its SAE Lens release names and what else it is called."""

    title: str
    prefix: str
    not_prefix: str | None = None  # a longer prefix that is another suite's (gemma-scope- vs gemma-scope-2-)
    hook: str | None = None  # the hook of a release whose name does not say it

    def reads(self, release: str) -> str | None:
        """The hook suffix ``release`` reads (None: a transcoder's, or unknown)."""
        return next((h for w, h in HOOK_WORDS if w in release), self.hook)


SUITES = {
    "gemma-scope": Suite("Gemma Scope (Gemma 2)", "gemma-scope-", not_prefix="gemma-scope-2-"),
    "gemma-scope-2": Suite("Gemma Scope 2 (Gemma 3)", "gemma-scope-2-"),
    "qwen-scope": Suite("Qwen-Scope (Qwen 3, 3.5)", "qwen-scope-", hook="hook_resid_post"),  # SAE-Res-*
    "llama-scope": Suite("Llama Scope (Llama 3.1)", "llama_scope_"),
}
# the hook a release reads, from its name: (words in the release name, TransformerLens hook suffix)
HOOK_WORDS = (("transcoder", None), ("-res", "hook_resid_post"), ("lxr", "hook_resid_post"),
              ("-mlp", "hook_mlp_out"), ("lxm", "hook_mlp_out"), ("-att", "hook_attn_out"), ("lxa", "hook_attn_out"))


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().rsplit("/", 1)[-1])


def _layer_of_hook(hook: str) -> int | None:
    m = re.fullmatch(r"blocks\.(\d+)\.(\S+)", hook)
    return int(m.group(1)) if m else None


def _layer_of_id(sae_id: str) -> int | None:
    m = re.search(r"(?:^|[/_])(?:layer_?|l)(\d+)(?=[/_r]|$)", sae_id)
    return int(m.group(1)) if m else None


def _directory() -> dict[str, Any]:
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError:
        raise UsageError("SAE Lens releases need SAE Lens: pip install 'interp-lab[saelens]' (a local SAE "
                         "directory needs nothing more: --saelens-release DIR)") from None
    return get_pretrained_saes_directory()


def _model_names(model: str | None) -> set[str]:
    """The normalized names ``model`` goes by (a registry name also by its upstream Hugging Face id)."""
    if not model:
        return set()
    from interp_lab.models.registry import lookup

    spec = lookup(model)
    return {_norm(model)} | ({_norm(spec.upstream)} if spec is not None else set())


def scope_release(suite: str, model: str | None, hook: str | None, directory: dict[str, Any]) -> str:
    """The suite's release for ``model`` reading ``hook``: its releases for that model, of the hook's kind
    (residual / MLP / attention), the canonical one first, the pretrained (pt) model's unless the model is
    an instruction-tuned one."""
    s = SUITES[suite]
    names = _model_names(model)
    if not names:
        raise UsageError(f"--backend scope without --scope-release needs --model (the {s.title} release is "
                         "chosen from the model and the hook)")
    mine = [r for r, lookup in directory.items() if r.startswith(s.prefix)
            and not (s.not_prefix and r.startswith(s.not_prefix)) and _norm(lookup.model) in names]
    if not mine:
        raise UsageError(f"{s.title} has no release for {model!r} in SAE Lens's directory (give --scope-release)")
    suffix = (hook or "hook_resid_post").rsplit(".", 1)[-1]
    kind = [r for r in mine if s.reads(r) == suffix]
    if not kind:
        raise UsageError(f"{s.title} has no release of {model!r} reading {suffix} (its releases: "
                         f"{', '.join(sorted(mine))})")
    tuned = any(w in _norm(model or "") for w in ("instruct", "it"))
    return min(kind, key=lambda r: ("canonical" not in r, r.endswith("-all"), ("-it-" in r) != tuned, len(r), r))


def scope_sae_id(release: str, sae_id: str, directory: dict[str, Any]) -> str:
    """``sae_id`` itself when the release has it; for a hook name, the release's SAE at the hook's layer
    (a canonical one, else one Neuronpedia has dashboards for, else the middle sparsity, else the first)."""
    lookup = directory[release]
    if sae_id in lookup.saes_map:
        return sae_id
    layer = _layer_of_hook(sae_id)
    if layer is None:
        raise UsageError(f"--scope-sae-id: {sae_id!r} is neither an SAE of {release} (e.g. "
                         f"{next(iter(lookup.saes_map))}) nor a hook name like blocks.6.hook_resid_post")
    at = [i for i in lookup.saes_map if _layer_of_id(i) == layer]
    if not at:
        raise UsageError(f"{release} has no SAE at layer {layer} (--scope-sae-id {sae_id})")
    links = lookup.neuronpedia_id or {}
    return min(at, key=lambda i: ("canonical" not in i, links.get(i) is None, "medium" not in i, at.index(i)))


def neuronpedia_sae(source: str) -> tuple[str, str] | None:
    """The SAE Lens release and SAE id whose Neuronpedia id is ``source`` (``gemma-3-270m/12-gemmascope-2-res-16k``),
    if SAE Lens is installed and knows one."""
    try:
        directory = _directory()
    except UsageError:
        return None
    for release, lookup in directory.items():
        for sae_id, link in (lookup.neuronpedia_id or {}).items():
            if link == source:
                return release, sae_id
    return None


def local_checkpoint(release: str, sae_id: str | None) -> Path | None:
    """The checkpoint directory a local ``release`` (and ``sae_id`` inside it) names, None if not local."""
    root = Path(release).expanduser()
    if not root.is_dir():
        if release.startswith(("/", "./", "../", "~")) or root.exists():
            raise UsageError(f"{release}: no such SAE directory")
        return None
    if sae_id:
        inner = root / sae_id
        if (inner / CFG).is_file():
            return inner
        if not (root / CFG).is_file():
            raise UsageError(f"{root}: no SAE {sae_id!r} in it (no {inner / CFG})")
    if (root / CFG).is_file():
        return root
    found = sorted(str(p.parent.relative_to(root)) for p in root.glob(f"*/**/{CFG}"))
    raise UsageError(f"{root}: no {CFG}" + (f"; give --saelens-sae-id, one of {', '.join(found[:8])}"
                                            if found else " (not an SAE Lens checkpoint directory)"))


def pretrained_checkpoint(release: str, sae_id: str, say: Any = None) -> Path:
    """SAE Lens's pretrained SAE, saved once under the cache in its ``save_model`` layout."""
    target = cache_dir() / "saelens" / _safe(release) / _safe(sae_id)
    if (target / CFG).is_file():
        return target
    directory = _directory()
    if release in directory and sae_id not in directory[release].saes_map:
        ids = list(directory[release].saes_map)
        raise UsageError(f"--saelens-sae-id: {release} has no SAE {sae_id!r} ({len(ids)} SAEs, e.g. "
                         f"{', '.join(ids[:4])})")
    from sae_lens import SAE

    if say is not None:
        say.say(f"downloading the SAE Lens SAE {release} / {sae_id} (once; cached in {target})")
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings: the one line below says what went wrong
    try:
        sae = SAE.from_pretrained(release, sae_id, device="cpu")
    except Exception as exc:  # network, missing repo, a converter's error: SAE Lens raises many kinds
        raise UsageError(f"SAE Lens could not load {release} / {sae_id}: {_reason(exc)} (a saved SAE works "
                         "offline: --saelens-release DIR)") from None
    finally:
        hub_log.setLevel(level)
    with atomic_dir(target) as tmp:
        sae.save_model(tmp)
    return target


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the network, or the first line of the error."""
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    if any(w in text for w in ("NameResolution", "Max retries", "offline", "OFFLINE", "ConnectTimeout",
                               "Connection refused", "Network is unreachable")):
        return "cannot reach the Hugging Face Hub (offline?)"
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name)


def plan(request: Request, checkpoint: Path, indexes: tuple[int, ...], provenance: dict[str, Any],
         notes: list[str]) -> ModelPlan:
    """The ``sae`` pipeline on ``checkpoint``; ``indexes`` (if any) the only latents measured and tested."""
    from interp_lab.providers.hf import HFOptions
    from interp_lab.sae.checkpoint import _read_cfg, read_metadata
    from interp_lab.schemas.feature_id import format_id

    cfg_path, cfg = _read_cfg(checkpoint)
    hook = read_metadata(cfg).get("hook_name")
    layer = _layer_of_hook(hook) if isinstance(hook, str) else None
    if layer is None:
        raise UsageError(f"{cfg_path}: metadata.hook_name {hook!r} is not a layer's hook (blocks.<i>.*)")
    d_sae = cfg.get("d_sae")
    bad = [i for i in indexes if isinstance(d_sae, int) and i >= d_sae]
    if bad:
        raise UsageError(f"feature indexes {bad} are out of range: the SAE has {d_sae} latents (0..{d_sae - 1})")
    hf = replace(HFOptions.from_value(request.hf), sae=str(checkpoint))
    selected = tuple(format_id(layer, "F", i) for i in indexes)
    return ModelPlan(pipeline="sae", hf=hf, selected=selected,
                     provenance={**provenance, "hook": hook, "d_sae": d_sae}, notes=notes)
