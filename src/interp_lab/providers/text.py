"""Text fingerprints: one MiniLM sentence embedding per feature of its label and top examples
(formats.md ``fingerprint.text_embedding``), so that features can be matched by what they are about."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

EXAMPLES = 5


def feature_text(entry: Mapping[str, Any], examples: int = EXAMPLES) -> str:
    """The text a feature is known by: its label, then its top examples (prompt texts, or corpus contexts
    with the activating token marked), one per line."""
    lines = [str(entry["label"])] if entry.get("label") else []
    for ex in list(entry.get("examples") or [])[:examples]:
        text = ex.get("text") if isinstance(ex, Mapping) else ex
        if text:
            lines.append(str(text))
    if len(lines) < examples + 1:
        for c in list((entry.get("corpus_contexts") or {}).get("contexts") or [])[: examples + 1 - len(lines)]:
            lines.append(f"{c.get('left', '')}[{c.get('token', '')}]{c.get('right', '')}")
    return "\n".join(lines)


def add_text_embeddings(entries: Sequence[dict[str, Any]], model: str | None = None) -> int:
    """Give every entry without one a ``fingerprint.text_embedding`` (in place); returns how many got one.
    Entries with no text (no label, no examples) get none."""
    from interp_lab.models.embed import DEFAULT, embedder

    name = model or DEFAULT
    todo = [(e, feature_text(e)) for e in entries if not (e.get("fingerprint") or {}).get("text_embedding")]
    todo = [(e, t) for e, t in todo if t.strip()]
    if not todo:
        return 0
    vecs = embedder(name).embed([t for _, t in todo])
    for (e, _), v in zip(todo, vecs):
        e.setdefault("fingerprint", {})["text_embedding"] = {"vector": [round(float(x), 6) for x in v], "model": name}
    return len(todo)
