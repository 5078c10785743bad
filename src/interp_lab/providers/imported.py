"""Features described elsewhere (Neuronpedia, Goodfire): imported as cards of tier ``imported``.

Without the model's activations, an imported feature carries only what its source says of it: an
explanation, the texts it fires most on, the tokens it promotes. They are ranked by how well those match
the criterion: the cosine similarity (all-MiniLM-L6-v2) of the criterion to each explanation (the best
one), to each top-activation text (the mean of the best five) and to the promoted tokens (one text);
the ranking score is the mean of those available. That is a similarity of descriptions, not evidence about
the model: no held-out association, no causal test, and the report says so. With the model and the SAE
the features live in (``--sae DIR``, or the SAE Lens release that Neuronpedia's source names), the
selected latents are measured and tested on the criterion's prompts like any latent instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from interp_lab.errors import UsageError
from interp_lab.providers.base import Evidence, ModelPlan, Request

TEXT_MATCH = "cosine similarity (all-MiniLM-L6-v2) of the criterion to the feature's descriptions: the best " \
             "explanation, the mean of the best 5 top-activation texts, the promoted tokens as one text; " \
             "score = their mean. A match of descriptions, not a measurement of the model"
TOP_CONTEXTS = 5


@dataclass
class Imported:
    """A feature from another source, as the ranker of descriptions sees it."""

    feature_id: str
    card: dict[str, Any]  # label, layer, examples, fingerprint, provenance
    explanations: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    order: float | None = None  # the source's own relevance, when it has one (Goodfire's search)


def text_match(criterion: str, features: list[Imported], progress: Any = None) -> list[dict[str, Any]]:
    """Each feature's partial card with ``text_match`` (its similarities and score), in input order."""
    from interp_lab.models.embed import embedder

    texts = [criterion]
    spans: list[tuple[int, int, int, int]] = []
    for f in features:
        a = len(texts)
        texts += f.explanations
        b = len(texts)
        texts += f.contexts
        c = len(texts)
        texts += [" ".join(f.tokens)] if f.tokens else []
        spans.append((a, b, c, len(texts)))
    if progress is not None:
        progress("matching descriptions to the criterion", 0, len(features))
    E = embedder().embed(texts)
    sim = E[1:] @ E[0]
    out = []
    for f, (a, b, c, d) in zip(features, spans):
        s = {"explanation": _r(sim[a - 1:b - 1].max()) if b > a else None,
             "contexts": _r(np.sort(sim[b - 1:c - 1])[::-1][:TOP_CONTEXTS].mean()) if c > b else None,
             "tokens": _r(sim[c - 1]) if d > c else None}
        present = [v for v in s.values() if v is not None]
        match = {"similarity": s, "score": _r(float(np.mean(present))) if present else None,
                 "n_texts": {"explanations": b - a, "contexts": c - b, "tokens": len(f.tokens)},
                 "method": TEXT_MATCH}
        if f.order is not None:
            match["source_relevance"] = f.order
        out.append({**f.card, "feature_id": f.feature_id, "text_match": match})
    return out


def _r(x: Any) -> float:
    return round(float(x), 4)


def rank_imported(request: Request, features: list[Imported], progress: Any, ev: Evidence) -> Evidence:
    """``ev`` with the top ``top_k`` imported features by their text match (all when ``top_k`` is larger)."""
    if not features:
        raise UsageError(f"--backend {request.backend}: no features to import")
    cards = text_match(request.criterion, features, progress)
    cards.sort(key=lambda c: (-(c["text_match"]["score"] or -1.0), c["feature_id"]))
    ev.imported = cards[:request.top_k]
    ev.notes.append(f"{len(features)} features imported from {request.backend}; the top {len(ev.imported)} by how "
                    "their descriptions match the criterion (text_match on each card). Tier imported: no "
                    "held-out association and no causal test were measured (the model's activations were not)")
    return ev


def neuronpedia(request: Request, progress: Any) -> Evidence | ModelPlan:
    from interp_lab.io.inputs import InputInfo
    from interp_lab.providers import neuronpedia as np_

    o = request.options
    refs = np_.parse_refs(o.neuronpedia_feature)
    got = np_.load_features(refs, url=o.neuronpedia_url, json_dir=o.neuronpedia_json,
                            cache=_hf(request).cache, progress=progress)
    items = [Imported(feature_id=f.feature_id, card=f.card, explanations=f.texts["explanations"],
                      contexts=f.texts["examples"], tokens=f.texts["promoted"]) for f in got]
    inputs = [InputInfo(role="neuronpedia", name=f.ref.key, sha256=_sha256(f.response),
                        params={"url": f.card["neuronpedia"].get("url")}) for f in got]
    warnings: list[str] = []
    measured = _measured_plan(request, got, progress, warnings)
    if measured is not None:
        measured.inputs = inputs
        return measured
    ev = Evidence(backend=request.backend, inputs=inputs, warnings=warnings)
    models = sorted({f.ref.model for f in got})
    if request.model and models and _norm(request.model) not in {_norm(m) for m in models}:
        ev.warnings.append(f"the features are of {', '.join(models)}, not {request.model!r}")
    ev.model = request.model or (models[0] if len(models) == 1 else None)
    return rank_imported(request, items, progress, ev)


def _sha256(response: dict[str, Any]) -> str:
    """The hash of a response's content (canonical JSON), whatever its bytes on the wire were."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(response, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower().rsplit("/", 1)[-1] if ch.isalnum())


def _hf(request: Request) -> Any:
    from interp_lab.providers.hf import HFOptions

    return HFOptions.from_value(request.hf)


def _measured_plan(request: Request, got: list[Any], progress: Any, warnings: list[str]) -> ModelPlan | None:
    """With the model and the features' SAE, the plan that measures and tests them: ``--sae DIR``, else the
    SAE Lens release whose Neuronpedia id is the features' source (fetched once, then cached)."""
    if request.model is None:
        return None
    from pathlib import Path

    from interp_lab.providers import saelens

    hf = _hf(request)
    sources = {f"{f.ref.model}/{f.ref.source}" for f in got}
    if not hf.sae:
        found = saelens.neuronpedia_sae(sources.pop()) if len(sources) == 1 else None
        if found is None:
            return None
        try:
            hf = replace(hf, sae=str(saelens.pretrained_checkpoint(*found, say=progress)))
        except UsageError as exc:  # offline, or SAE Lens cannot convert it: the features stay imported
            warnings.append(f"the features' SAE ({found[0]} / {found[1]}) could not be loaded ({exc}); their "
                            "descriptions were ranked instead of their activations")
            return None
    request = replace(request, hf=hf)
    plan = saelens.plan(request, Path(hf.sae), tuple(f.ref.index for f in got), {"source": "neuronpedia"}, [])
    layer = saelens._layer_of_hook(plan.provenance["hook"])
    for f in got:
        if f.ref.layer is not None and f.ref.layer != layer:
            raise UsageError(f"{f.ref.key}: a layer-{f.ref.layer} feature; the SAE {hf.sae} reads layer {layer}")
    ids = plan.selected
    plan.cards = {i: {"label": f.card.get("label"), "neuronpedia": f.card.get("neuronpedia")} for i, f in zip(ids, got)}
    plan.notes.append(f"{len(ids)} Neuronpedia features measured on the model's activations through the SAE at "
                      f"{plan.provenance['hook']} (their Neuronpedia explanations are the cards' labels)")
    return plan


GOODFIRE_INSTALL = "pip install goodfire (the Goodfire SDK)"


def goodfire_client() -> Any:
    """The Goodfire SDK's client, or one line saying what to install or set."""
    try:
        import goodfire
    except ImportError:
        raise UsageError(f"--backend goodfire needs the Goodfire SDK: {GOODFIRE_INSTALL}, and GOODFIRE_API_KEY "
                         "set to a key from platform.goodfire.ai") from None
    key = os.environ.get("GOODFIRE_API_KEY")
    if not key:
        raise UsageError("--backend goodfire needs GOODFIRE_API_KEY (a key from platform.goodfire.ai) in the "
                         "environment")
    return goodfire.Client(api_key=key)


def goodfire(request: Request, progress: Any) -> Evidence:
    """The SDK's semantic feature search for the criterion (its own relevance order kept on each card),
    ranked again by how the labels match the criterion like every imported feature."""
    client = goodfire_client()
    if not request.model:
        raise UsageError("--backend goodfire needs --model (a model Goodfire serves, e.g. "
                         "meta-llama/Llama-3.3-70B-Instruct)")
    k = request.options.goodfire_top_k
    progress("searching Goodfire features", 0, None)
    try:
        found = client.features.search(request.criterion, model=request.model, top_k=k)
    except Exception as exc:  # the SDK's HTTP and validation errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UsageError(f"Goodfire feature search failed: {first}") from None
    features, relevance = (found if isinstance(found, tuple) and len(found) == 2 else (found, None))
    items = []
    for rank, feat in enumerate(features):
        index = getattr(feat, "index_in_sae", None)
        fid = f"goodfire:F{index}" if index is not None else f"goodfire:{getattr(feat, 'uuid', rank)}"
        label = str(getattr(feat, "label", "") or "")
        card = {"label": label or None, "layer": None, "examples": [], "fingerprint": {},
                "provenance": {"source": "goodfire", "model": request.model, "uuid": str(getattr(feat, "uuid", "")),
                               "search_rank": rank + 1}}
        rel = None if relevance is None else float(relevance[rank])
        items.append(Imported(feature_id=fid, card=card, explanations=[label] if label else [], order=rel))
    ev = Evidence(backend="goodfire", model=request.model)
    return rank_imported(replace(request, top_k=k), items, progress, ev)
