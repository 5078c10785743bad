"""Neuronpedia's feature JSON (``GET /api/feature/{model}/{source}/{index}``): its typed shape, and the
conversions between it and interp-lab's cards, both ways (``card_of``, ``response_of_card``).

The shape is read from Neuronpedia's own code (github.com/hijohnnylin/neuronpedia at ebb8426f): the route
``apps/webapp/app/api/feature/[modelId]/[layer]/[index]/route.ts`` answers ``getNeuronOptimized``
(``apps/webapp/lib/db/neuron.ts``), a Prisma ``Neuron`` row (``apps/webapp/prisma/schema.prisma``) with its
activations and explanations, or 404 ``{"error": ...}``. The fields used here:

* ``modelId`` (str), ``layer`` (str: the *source*, ``6-res-jb``), ``index`` (str of digits: the database
  keeps it as text; an int is accepted);
* ``explanations``: ``[{description: str, typeName: str|null`` (the method: ``oai_token-act-pair``,
  ``np_acts-logits-general`` ...), ``explanationModelName: str|null`` (the explainer: ``gpt-4o-mini`` ...),
  ``scores: [{value: float, explanationScoreTypeName: str, explanationScoreModelName: str}]}]``, best first
  (ordered by scoreV2, then scoreV1; older responses carry ``scoreV1`` / ``scoreV2`` themselves);
* ``activations``: ``[{tokens: [str], values: [float]`` (one per token), ``maxValue: float,
  maxValueTokenIndex: int, minValue: float, id: str, dataIndex: str|null, binMin / binMax / binContains:
  float|null`` (the quantile a sample was drawn from)``}]``, highest ``maxValue`` first;
* ``pos_str`` / ``pos_values``, ``neg_str`` / ``neg_values``: the tokens the feature's direction promotes /
  suppresses through the unembedding and their logits (parallel lists);
* ``frac_nonzero`` (float): the density, the fraction of tokens the feature fires on;
* ``freq_hist_data_bar_heights`` / ``freq_hist_data_bar_values``: the activation histogram (bar heights,
  bar centres); ``logits_hist_data_bar_heights`` / ``logits_hist_data_bar_values``: the logits' one;
* ``maxActApprox`` (float), ``hookName`` (str|null).

The rest (``model``, ``source``, ``sourceSet``, correlations, umap ...) stays in the raw response. A null
in a list of numbers (how JSON.stringify writes NaN) is kept as None.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import msgspec

from interp_lab.errors import InputError
from interp_lab.evidence.examples import MAX_TEXT, WINDOW_AFTER, WINDOW_BEFORE
from interp_lab.schemas.feature_id import parse_id
from interp_lab.schemas.records import FEATURE_ROW, FeatureRow

EXAMPLES = 20  # top activations kept on a card (Neuronpedia's dashboards show about as many before quantiles)
SPACE = "\u2581"  # SentencePiece's space, as Gemma / Llama tokens show on Neuronpedia
Numbers = list[Optional[float]]


def _bad(field: str, message: str) -> ValueError:
    return ValueError(f"@{field}: {message}")


class Score(msgspec.Struct, frozen=True):
    value: Optional[float] = None
    explanationScoreTypeName: Optional[str] = None
    explanationScoreModelName: Optional[str] = None


class Explanation(msgspec.Struct, frozen=True):
    description: str
    typeName: Optional[str] = None
    explanationModelName: Optional[str] = None
    scores: list[Score] = []
    scoreV1: Optional[float] = None
    scoreV2: Optional[float] = None


class Activation(msgspec.Struct, frozen=True):
    tokens: list[str]
    values: Numbers
    maxValue: Optional[float] = None
    maxValueTokenIndex: Optional[int] = None
    id: Optional[str] = None

    def __post_init__(self) -> None:
        if len(self.values) != len(self.tokens):
            raise _bad("values", f"has {len(self.values)} values for {len(self.tokens)} tokens")
        i = self.maxValueTokenIndex
        if i is not None and not 0 <= i < max(len(self.tokens), 1):
            raise _bad("maxValueTokenIndex", f"{i} is not a position of the {len(self.tokens)} tokens")


class FeatureResponse(msgspec.Struct, frozen=True):
    """The fields of a feature response interp-lab reads (module docstring)."""

    modelId: str
    layer: str
    index: Union[int, str]
    explanations: list[Explanation] = []
    activations: list[Activation] = []
    pos_str: list[str] = []
    pos_values: Numbers = []
    neg_str: list[str] = []
    neg_values: Numbers = []
    frac_nonzero: Optional[float] = None
    maxActApprox: Optional[float] = None
    hookName: Optional[str] = None
    freq_hist_data_bar_heights: Numbers = []
    freq_hist_data_bar_values: Numbers = []
    logits_hist_data_bar_heights: Numbers = []
    logits_hist_data_bar_values: Numbers = []

    def __post_init__(self) -> None:
        text = str(self.index)
        if isinstance(self.index, bool) or not (text.isascii() and text.isdigit()):
            raise _bad("index", f"expected a feature index (an integer >= 0), got {self.index!r}")
        for name in ("pos", "neg"):
            strs, values = getattr(self, f"{name}_str"), getattr(self, f"{name}_values")
            if values and len(values) != len(strs):
                raise _bad(f"{name}_values", f"has {len(values)} values for {len(strs)} {name}_str tokens")
        if self.frac_nonzero is not None and not 0.0 <= self.frac_nonzero <= 1.0:
            raise _bad("frac_nonzero", f"expected a fraction in [0, 1], got {self.frac_nonzero}")

    @property
    def number(self) -> int:
        return int(self.index)

    @property
    def key(self) -> str:
        """``model@source:index``, the ref of this feature."""
        return f"{self.modelId}@{self.layer}:{self.number}"


_decoder = msgspec.json.Decoder(FeatureResponse)


def decode(raw: bytes, where: str) -> tuple[FeatureResponse, dict[str, Any]]:
    """The typed response and the whole JSON object; one ``InputError`` naming ``where`` (a URL or a file),
    the field or the parse position otherwise."""
    from interp_lab.io.jsonl import DECODE_ERRORS, validation_error

    try:
        return _decoder.decode(raw), msgspec.json.decode(raw)
    except DECODE_ERRORS as exc:
        try:
            body = msgspec.json.decode(raw)
        except DECODE_ERRORS:
            body = None
        if isinstance(body, dict) and "error" in body and "modelId" not in body:
            raise InputError(where, f"not a feature: the answer is an error: {str(body['error'])[:300]}") from None
        err = validation_error(where, 0, exc, raw)
        err.line = None  # one JSON document: the field or the byte position says where
        if "truncated" in err.message:  # msgspec names no position for a body cut short: it is the end
            err.message = f"malformed JSON (it ends at byte {len(raw)}, before the document does: cut short?)"
        if err.message == "required field is missing" or err.message.startswith("Expected object"):
            err.message = f"not a Neuronpedia feature object: {err.message}"
        raise err from None


def layer_of_source(source: str) -> int | None:
    """The layer a Neuronpedia source starts with (``6-res-jb`` -> 6, ``6`` -> 6), or None."""
    head = source.split("-", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else None


def _peak(act: Activation) -> int | None:
    """The max-activating token: ``maxValueTokenIndex``, else the largest value's position."""
    if act.maxValueTokenIndex is not None and act.tokens:
        return act.maxValueTokenIndex
    finite = [(v, i) for i, v in enumerate(act.values) if v is not None and math.isfinite(v)]
    return max(finite, key=lambda p: (p[0], -p[1]))[1] if finite else None


def _example(act: Activation, fallback_id: str) -> dict[str, Any]:
    """A card example: the text, the max-activating token and the token window around it (as
    ``evidence.examples`` shows a token row), and the whole activation record (tokens, values)."""
    text = "".join(act.tokens).replace(SPACE, " ")
    k = _peak(act)
    ex: dict[str, Any] = {"prompt_id": act.id or fallback_id,
                          "activation": act.maxValue if act.maxValue is not None or k is None else act.values[k],
                          "text": text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"}
    if k is not None:
        lo, hi = max(0, k - WINDOW_BEFORE), min(len(act.tokens), k + WINDOW_AFTER + 1)
        ex.update(token_index=k, token=act.tokens[k],
                  context=[{"token": act.tokens[j], "activation": act.values[j], "focus": j == k} for j in range(lo, hi)])
    ex.update(tokens=list(act.tokens), values=list(act.values))
    return ex


def _explanation(e: Explanation) -> dict[str, Any]:
    out: dict[str, Any] = {"description": e.description, "typeName": e.typeName,
                           "explanationModelName": e.explanationModelName,
                           "scores": [msgspec.structs.asdict(s) for s in e.scores]}
    out.update({k: v for k, v in (("scoreV1", e.scoreV1), ("scoreV2", e.scoreV2)) if v is not None})
    return out


def _logits(strs: list[str], values: Numbers) -> list[dict[str, Any]]:
    return [{"token": s, "value": values[i] if values else None} for i, s in enumerate(strs)]


def card_of(resp: FeatureResponse, *, feature_id: str, dashboard: str, read_from: str,
            examples: int | None = EXAMPLES) -> dict[str, Any]:
    """The card fields of one feature (what ``providers.features.card_fields`` gives for a dump row: label,
    layer, examples, fingerprint, provenance) and the ``neuronpedia`` block: explanations, logits, density,
    histograms, and where the feature lives. ``examples``: the top activations kept (None: all)."""
    acts = [a for a in resp.activations if a.tokens][:examples]
    label = resp.explanations[0].description.strip() if resp.explanations else None
    vocab = {"promoted": [s.replace(SPACE, " ") for s in resp.pos_str],
             "suppressed": [s.replace(SPACE, " ") for s in resp.neg_str]}
    return {
        "label": label or None,
        "layer": layer_of_source(resp.layer),
        "examples": [_example(a, f"{resp.key}#{i}") for i, a in enumerate(acts)],
        "fingerprint": {"vocab": vocab} if resp.pos_str or resp.neg_str else {},
        "provenance": {"source": "neuronpedia", "model": resp.modelId, "feature": resp.key, "read_from": read_from,
                       **({"hooks": [resp.hookName]} if resp.hookName else {})},
        "neuronpedia": {
            "model": resp.modelId, "source": resp.layer, "index": resp.number, "url": dashboard,
            "hook": resp.hookName,
            "explanations": [_explanation(e) for e in resp.explanations],
            "logits": {"positive": _logits(resp.pos_str, resp.pos_values),
                       "negative": _logits(resp.neg_str, resp.neg_values)},
            "density": resp.frac_nonzero,
            "max_activation": resp.maxActApprox,
            "histograms": {
                "activation": {"heights": resp.freq_hist_data_bar_heights, "values": resp.freq_hist_data_bar_values},
                "logits": {"heights": resp.logits_hist_data_bar_heights, "values": resp.logits_hist_data_bar_values},
            },
        },
        "feature_id": feature_id,
    }


def row_of(card: dict[str, Any]) -> FeatureRow:
    """The ``interp-lab.feature.v1`` row of a card from ``card_of``."""
    np_ = card["neuronpedia"]
    return FeatureRow(feature_id=card["feature_id"], schema_version=FEATURE_ROW, model=np_["model"],
                      layer=card["layer"], label=card["label"], examples=[e["text"] for e in card["examples"]],
                      source="neuronpedia", fingerprint=card["fingerprint"] or None)


# ---------------------------------------------------------------------------------------- the other way


def _activation_of(ex: dict[str, Any], where: dict[str, Any]) -> dict[str, Any] | None:
    """A Neuronpedia activation record from a card example: its own tokens and values (an imported card),
    else its token window (a token row), else the whole prompt as one token (a prompt row)."""
    if ex.get("tokens") is not None and ex.get("values") is not None:
        tokens, values, k = list(ex["tokens"]), list(ex["values"]), ex.get("token_index")
    elif ex.get("context"):
        ctx = ex["context"]
        tokens, values = [str(t.get("token") or "") for t in ctx], [t.get("activation") for t in ctx]
        k = next((j for j, t in enumerate(ctx) if t.get("focus")), None)
    elif ex.get("text") is not None and ex.get("activation") is not None:
        tokens, values, k = [str(ex["text"])], [ex["activation"]], 0
    else:
        return None
    finite = [v for v in values if v is not None]
    return {**where, "id": ex.get("prompt_id"), "tokens": tokens, "values": values,
            "maxValue": ex.get("activation", max(finite, default=None)), "maxValueTokenIndex": k,
            "minValue": min(finite, default=None)}


def identity_of(card: dict[str, Any], model: str | None) -> tuple[str, str, int] | None:
    """(model, source, index) a card is exported under: an imported card's own; else the report's model,
    ``{layer}-interp-lab-{kind}`` and the id's index (``L25:D1`` -> ``25-interp-lab-d``, 1); None for an id
    with no index (a control direction, an id kept as given)."""
    np_ = card.get("neuronpedia") or {}
    if np_.get("model") and np_.get("source") and np_.get("index") is not None:
        return str(np_["model"]), str(np_["source"]), int(np_["index"])
    fid = str(card.get("feature_id", ""))
    got = parse_id(fid)
    if got is None:
        head, _, tail = fid.rpartition("F")  # an SAE latent without a layer: F12
        if head or not tail.isdigit():
            return None
        return str(model or "unknown-model"), "interp-lab-f", int(tail)
    return str(model or "unknown-model"), f"{got.layer}-interp-lab-{got.kind.lower()}", got.index


def response_of_card(card: dict[str, Any], identity: tuple[str, str, int]) -> dict[str, Any]:
    """A card in Neuronpedia's response shape (same field names and types; what interp-lab does not know is
    empty: no logit values for its own cards, no density, no histograms)."""
    model, source, index = identity
    np_ = card.get("neuronpedia") or {}
    where = {"modelId": model, "layer": source, "index": str(index)}
    if np_.get("explanations") is not None:
        explanations = np_["explanations"]
    else:
        label = card.get("label")
        explanations = [{"description": label, "typeName": "interp-lab", "explanationModelName": None,
                         "scores": []}] if label else []
    acts = [a for a in (_activation_of(e, where) for e in card.get("examples") or [] if isinstance(e, dict)) if a]
    logits = np_.get("logits") or {}
    vocab = (card.get("fingerprint") or {}).get("vocab") or {}
    out: dict[str, Any] = {**where, "hookName": np_.get("hook") or next(iter((card.get("provenance") or {})
                                                                          .get("hooks") or []), None)}
    for name, side, fp_key in (("pos", "positive", "promoted"), ("neg", "negative", "suppressed")):
        pairs = logits.get(side)
        strs = [p["token"] for p in pairs] if pairs is not None else list(vocab.get(fp_key) or [])
        values = [p["value"] for p in pairs] if pairs is not None else []
        out[f"{name}_str"], out[f"{name}_values"] = strs, values if all(v is not None for v in values) else []
    hist = np_.get("histograms") or {}
    for name, part in (("freq", "activation"), ("logits", "logits")):
        out[f"{name}_hist_data_bar_heights"] = (hist.get(part) or {}).get("heights", [])
        out[f"{name}_hist_data_bar_values"] = (hist.get(part) or {}).get("values", [])
    finite = [a["maxValue"] for a in acts if a["maxValue"] is not None]
    out.update(explanations=explanations, activations=acts, frac_nonzero=np_.get("density"),
               maxActApprox=np_.get("max_activation", max(finite, default=None)))
    return out
