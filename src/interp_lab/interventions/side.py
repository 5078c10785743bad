"""Unrelated prompts on which side effects of an edit are measured."""

from __future__ import annotations

import re

UNRELATED_CORPUS = "lee"


def unrelated_prompts(n: int, exclude: set[str], source: str | None = None) -> list[str]:
    """Up to ``n`` prompts: from a corpus, the first 6-14 words of each document's first sentence (never
    ending in a digit); from a prompt file, its texts. None is one of ``exclude`` (the criterion's own)."""
    from interp_lab.io.datasets import CORPORA, iter_documents
    from interp_lab.io.hashing import hash_unit

    name = source or UNRELATED_CORPUS
    from_corpus = all(part in CORPORA for part in name.split("+"))
    out: list[str] = []
    for doc in iter_documents(name):
        if len(out) >= n:
            break
        text = doc.text
        if from_corpus:
            words = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0].split()
            if len(words) < 8:
                continue
            k = 6 + int(hash_unit([doc.prompt_id])[0] * 9)
            text = " ".join(words[: min(k, len(words) - 1)])
        if text and text not in exclude and not text[-1].isdigit():
            out.append(text)
    return out
