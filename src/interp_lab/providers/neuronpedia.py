"""The Neuronpedia provider: features published on Neuronpedia (neuronpedia.org, or a self-hosted copy) as
cards and feature rows, fetched from its API or read from saved responses.

A feature is named by a ref: ``model@source:index`` (``gpt2-small@6-res-jb:650``), its dashboard URL
(``https://www.neuronpedia.org/gpt2-small/6-res-jb/650``) or its API URL
(``https://www.neuronpedia.org/api/feature/gpt2-small/6-res-jb/650``); a value may hold several, comma-separated.
``load_features`` fetches them (``neuronpedia_http``: retries, cache, API key) or matches them to the saved
responses of a directory, and converts each (``neuronpedia_format``: the response's fields, from Neuronpedia's
own code) into the card fields and the ``interp-lab.feature.v1`` row. A provider delivers evidence, never a
ranking: what a Neuronpedia card claims is docs/providers/neuronpedia.md's to say.

Feature ids: ``L{layer}:F{index}`` (the layer the source starts with: ``6-res-jb`` -> ``L6:F650``), else
``{source}:F{index}``; when two features of one load would share an id, both take the longer form
(``6-res-jb:F650``, then ``gpt2-small@6-res-jb:F650``). A file ``export-neuronpedia`` wrote of one of
interp-lab's own cards (source ``25-interp-lab-d``) gets its id back (``L25:D1``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from interp_lab.errors import InputError, UsageError
from interp_lab.providers.neuronpedia_format import (
    EXAMPLES,
    FeatureResponse,
    card_of,
    decode,
    layer_of_source,
    row_of,
)
from interp_lab.providers.neuronpedia_http import DEFAULT_URL, NeuronpediaClient
from interp_lab.schemas.command import as_progress
from interp_lab.schemas.records import FeatureRow

_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"  # a model or source id: no '/', '@', ':' or space; never '.' or '..'
_SHORT = re.compile(rf"^(?P<model>{_NAME})@(?P<source>{_NAME}):(?P<index>\d+)$")
_PATH = re.compile(rf"^/(?:api/feature/)?(?P<model>{_NAME})/(?P<source>{_NAME})/(?P<index>\d+)/?$")
_OURS = re.compile(r"^\d+-interp-lab-([ndrf])$")  # export-neuronpedia's source for its own cards
FORMS = ("model@source:index (gpt2-small@6-res-jb:650), a dashboard URL (https://www.neuronpedia.org/gpt2-small/"
         "6-res-jb/650) or an API URL (https://www.neuronpedia.org/api/feature/gpt2-small/6-res-jb/650)")


@dataclass(frozen=True)
class NeuronpediaRef:
    """One feature on Neuronpedia: a model id, a source (an SAE of one layer: ``6-res-jb``) and an index."""

    model: str
    source: str
    index: int

    @property
    def key(self) -> str:
        """``model@source:index``."""
        return f"{self.model}@{self.source}:{self.index}"

    @property
    def api_path(self) -> str:
        return f"/api/feature/{self.model}/{self.source}/{self.index}"

    @property
    def layer(self) -> int | None:
        """The layer the source starts with (``6-res_scefr-ajt`` -> 6), or None."""
        return layer_of_source(self.source)

    @property
    def kind(self) -> str:
        """``F`` (an SAE latent), or the kind interp-lab's export wrote into the source (``25-interp-lab-d``)."""
        m = _OURS.match(self.source)
        return m.group(1).upper() if m else "F"

    def dashboard(self, base: str = DEFAULT_URL) -> str:
        return f"{base.rstrip('/')}/{self.model}/{self.source}/{self.index}"


def parse_ref(text: str) -> NeuronpediaRef:
    """One ref (module docstring); ``UsageError`` naming it and the accepted forms otherwise."""
    value = text.strip()
    m = _SHORT.match(value)
    if m is None and value.lower().startswith(("http://", "https://")):
        parts = urlsplit(value)
        m = _PATH.match(parts.path) if parts.netloc else None
    if m is None:
        raise UsageError(f"Neuronpedia feature {text!r}: expected {FORMS}")
    return NeuronpediaRef(m.group("model"), m.group("source"), int(m.group("index")))


def parse_refs(values: str | NeuronpediaRef | Iterable[str | NeuronpediaRef] | None) -> list[NeuronpediaRef]:
    """Every ref of ``values`` (a value may hold several, comma-separated; values may repeat), each once, in
    the order first given."""
    if values is None:
        return []
    if isinstance(values, (str, NeuronpediaRef)):
        values = [values]
    out: dict[str, NeuronpediaRef] = {}
    for value in values:
        pieces = [value] if isinstance(value, NeuronpediaRef) else [p for p in str(value).split(",") if p.strip()]
        for piece in pieces:
            ref = piece if isinstance(piece, NeuronpediaRef) else parse_ref(piece)
            out.setdefault(ref.key, ref)
    return list(out.values())


@dataclass(frozen=True)
class NeuronpediaFeature:
    """One imported feature: its ref, the response as Neuronpedia gave it (or the saved file held it), the
    ``interp-lab.feature.v1`` row, and the card fields (``label``, ``layer``, ``examples``, ``fingerprint``,
    ``provenance`` as ``providers.features.card_fields`` gives them, and ``neuronpedia``: ``explanations``,
    ``logits``, ``density``, ``max_activation``, ``histograms``, ``model`` / ``source`` / ``index`` / ``url``)."""

    ref: NeuronpediaRef
    response: dict[str, Any]
    row: FeatureRow
    card: dict[str, Any]

    @property
    def feature_id(self) -> str:
        return self.row.feature_id

    @property
    def texts(self) -> dict[str, list[str]]:
        """What the feature is known by: its explanations (best first), its top activations' texts with the
        max-activating token in brackets, and the tokens it promotes."""
        examples = []
        for ex in self.card["examples"]:
            toks, k = ex["tokens"], ex.get("token_index")
            examples.append(ex["text"] if k is None else
                            "".join(toks[:k]) + f"[{toks[k]}]" + "".join(toks[k + 1:]))
        return {"explanations": [e["description"] for e in self.card["neuronpedia"]["explanations"]],
                "examples": [e.replace("\u2581", " ") for e in examples],
                "promoted": list((self.card["fingerprint"].get("vocab") or {}).get("promoted") or [])}


def feature_ids(refs: list[NeuronpediaRef]) -> list[str]:
    """The feature id of each ref (module docstring: ``L6:F650``, longer where two would collide)."""
    forms = [
        lambda r: f"{r.source}:{r.kind}{r.index}" if r.layer is None else f"L{r.layer}:{r.kind}{r.index}",
        lambda r: f"{r.source}:{r.kind}{r.index}",
        lambda r: f"{r.model}@{r.source}:{r.kind}{r.index}",
    ]
    ids = [forms[0](r) for r in refs]
    for form in forms[1:]:
        seen = Counter(ids)
        ids = [form(r) if seen[i] > 1 else i for r, i in zip(refs, ids)]
    return ids


def read_saved(json_dir: str | os.PathLike) -> dict[str, tuple[Path, FeatureResponse, dict[str, Any]]]:
    """The saved responses of ``json_dir`` (its ``*.json`` files, one feature response each, as the API gives
    it), keyed by their own ``modelId@layer:index``; one ``InputError`` naming the file and field otherwise."""
    root = Path(json_dir)
    if not root.is_dir():
        raise InputError(root, "directory not found" if not root.exists() else "expected a directory of *.json files")
    files = sorted(root.glob("*.json"))
    if not files:
        raise InputError(root, "no *.json files (saved Neuronpedia feature responses) in the directory")
    out: dict[str, tuple[Path, FeatureResponse, dict[str, Any]]] = {}
    for path in files:
        resp, body = decode(path.read_bytes(), str(path))
        if resp.key in out:
            raise InputError(path, f"the feature {resp.key} again (also in {out[resp.key][0].name})")
        out[resp.key] = (path, resp, body)
    return out


def load_features(refs: Any = (), *, url: str | None = None, json_dir: str | os.PathLike | None = None,
                  cache: bool = True, progress: Any = None, examples: int | None = EXAMPLES,
                  client: NeuronpediaClient | None = None) -> list[NeuronpediaFeature]:
    """The features ``refs`` (refs, or strings holding them; see ``parse_refs``) from Neuronpedia's API at
    ``url`` (default the public site; ``client``: one with other timeouts or retries), or with ``json_dir``
    from its saved responses, matched by their modelId / layer / index (no refs: every file). ``cache``:
    reuse and keep fetched responses (``neuronpedia_http``). ``examples``: the top activations kept on a card
    (None: all). Errors are one line (``UsageError`` for a bad ref, ``InputError`` for a bad response or
    file, ``RemoteError`` when the API does not deliver)."""
    progress = as_progress(progress)
    wanted = parse_refs(refs)
    got: list[tuple[NeuronpediaRef, FeatureResponse, dict[str, Any], str]] = []
    if json_dir is not None:
        if url is not None or client is not None:
            raise UsageError("give --neuronpedia-json (saved responses) or --neuronpedia-url (the API), not both")
        saved = read_saved(json_dir)
        if not wanted:
            wanted = [NeuronpediaRef(resp.modelId, resp.layer, resp.number) for _, resp, _ in saved.values()]
        for ref in wanted:
            if ref.key not in saved:
                raise InputError(json_dir, f"no saved response for {ref.key} (files are matched by their "
                                           f"modelId, layer and index; {len(saved)} files read)")
            path, resp, body = saved[ref.key]
            got.append((ref, resp, body, path.name))
        base = DEFAULT_URL
    else:
        if not wanted:
            raise UsageError("no Neuronpedia feature given: pass --neuronpedia-feature with " + FORMS
                             + ", or --neuronpedia-json DIR of saved responses")
        client = client or NeuronpediaClient(url, cache=cache, progress=progress)
        for n, ref in enumerate(wanted):
            progress("fetching Neuronpedia features", n, len(wanted), ref.key)
            resp, body = client.fetch(ref)
            got.append((ref, resp, body, client.api_url(ref)))
        progress("fetching Neuronpedia features", len(wanted), len(wanted))
        base = client.base
    out = []
    for fid, (ref, resp, body, where) in zip(feature_ids([g[0] for g in got]), got):
        card = card_of(resp, feature_id=fid, dashboard=ref.dashboard(base), read_from=where, examples=examples)
        out.append(NeuronpediaFeature(ref=ref, response=body, row=row_of(card), card=card))
    return out
