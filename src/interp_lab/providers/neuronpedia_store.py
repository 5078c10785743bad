"""An SAE's latents encoded in an activation store (``store encode``) as Neuronpedia feature responses: each
latent's top activations with the values of every token in their window, its density and the histogram of
its non-zero values over the whole store (``store.latents``). No explanations and no logits: the store has
neither (an empty list each, as Neuronpedia writes for a feature without them)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from interp_lab.errors import UsageError
from interp_lab.schemas.command import as_progress
from interp_lab.schemas.feature_id import format_id

WINDOW = 12  # tokens each side of a top activation: about the 24-token windows Neuronpedia's dashboards show


def _source(layer: int | None, sae_id: str) -> str:
    """A Neuronpedia source id for the encoding: ``{layer}-{sae_id}`` (its characters kept to a source's)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", sae_id)
    return name if layer is None or name.startswith(f"{layer}-") else f"{layer}-{name}"


def latent_responses(store_path: str | os.PathLike, sae_id: str, latents: tuple[int, ...], *, k: int = 20,
                     window: int = WINDOW, progress: Any = None) -> list[tuple[str, tuple[str, str, int], dict]]:
    """(feature id, (model, source, index), response) for each latent of the store's encoding ``sae_id``."""
    from interp_lab.store.latents import (
        latent_frequencies,
        latent_histogram,
        latent_values,
        latents_dir,
        stored_latents,
        top_latent,
    )
    from interp_lab.store.reader import Store

    progress = as_progress(progress)
    st = Store(store_path)
    info_path = latents_dir(st, sae_id) / "info.json"
    if not info_path.is_file():
        known = ", ".join(i["sae_id"] for i in stored_latents(st)) or "none"
        raise UsageError(f"{st.root}: no latents {sae_id!r} (encoded: {known}; interp-lab store encode)")
    info = json.loads(info_path.read_text())
    bad = [i for i in latents if i >= info["d_sae"]]
    if bad:
        raise UsageError(f"--feature-indexes {bad[0]}: the SAE {sae_id!r} has {info['d_sae']} latents (0 to "
                         f"{info['d_sae'] - 1})")
    m = re.match(r"^blocks\.(\d+)\.", info["hook"])
    layer = int(m.group(1)) if m else None
    model, source = st.manifest.model, _source(layer, sae_id)
    freq = latent_frequencies(st, sae_id)
    out = []
    for n, latent in enumerate(latents):
        progress("exporting latents", n, len(latents), f"latent {latent}")
        tops = top_latent(st, sae_id, latent, k=k, window=window)
        where = {"modelId": model, "layer": source, "index": str(latent)}
        focus = [next(j for j, t in enumerate(top["context"]) if t["focus"]) for top in tops]
        # a context is consecutive store rows around its top row
        rows = [[top["row"] - f + j for j in range(len(top["context"]))] for top, f in zip(tops, focus)]
        got = latent_values(st, sae_id, latent, sorted({r for rs in rows for r in rs}))
        acts = []
        for top, f, rs in zip(tops, focus, rows):
            values = [got.get(r, 0.0) for r in rs]
            acts.append({**where, "id": f"{top['prompt_id']}@{top['position']}",
                         "tokens": [t["token"] for t in top["context"]], "values": values, "maxValue": top["activation"],
                         "maxValueTokenIndex": f, "minValue": min(values)})
        heights, centres = latent_histogram(st, sae_id, latent)
        resp = {**where, "hookName": info["hook"], "explanations": [], "activations": acts,
                "pos_str": [], "pos_values": [], "neg_str": [], "neg_values": [],
                "frac_nonzero": round(float(freq[latent]), 9),
                "maxActApprox": max((a["maxValue"] for a in acts), default=0.0),
                "freq_hist_data_bar_heights": heights, "freq_hist_data_bar_values": centres,
                "logits_hist_data_bar_heights": [], "logits_hist_data_bar_values": []}
        out.append((format_id(layer, "F", latent), (model, source, latent), resp))
    progress("exporting latents", len(latents), len(latents))
    return out
