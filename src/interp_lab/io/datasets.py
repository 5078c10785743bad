"""Documents to harvest: a prompt-set JSONL, a text file (one document per line), or a gensim corpus.

Corpora by name: ``lee`` (gensim's 300 Lee news documents) and ``enwiki`` (its
shortened English Wikipedia dump, 106 articles); ``lee+enwiki`` for both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.errors import InputError, UsageError
from interp_lab.io.jsonl import iter_lines
from interp_lab.io.prompts import read_prompts
from interp_lab.io.records import text_prompt_id

CORPORA = ("lee", "enwiki")


@dataclass(frozen=True)
class Document:
    doc_id: int  # position in the dataset
    prompt_id: str
    text: str
    criterion_score: float | None = None
    split: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _gensim_path(name: str) -> str:
    try:
        from gensim.test.utils import datapath
    except ImportError:
        raise UsageError(f"the {name!r} corpus comes with gensim: pip install 'interp-lab[corpora]'") from None
    return datapath({"lee": "lee_background.cor",
                     "enwiki": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"}[name])


_MARKUP = re.compile(r"'{2,}")
_SPACE = re.compile(r"[ \t]*\n[ \t\n]*\n+")


def _corpus(name: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    path = _gensim_path(name)
    if name == "lee":
        with open(path, encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                if line.strip():
                    yield f"lee-{i}", line.strip(), {"corpus": "lee"}
        return
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    with bz2.open(path, "rb") as fh:
        for title, text, pageid in extract_pages(fh, ("0",)):
            clean = _SPACE.sub("\n\n", _MARKUP.sub("", filter_wiki(text))).strip()
            if len(clean) >= 200:  # redirects and stubs carry no text worth harvesting
                yield f"enwiki-{pageid}", clean, {"corpus": "enwiki", "title": title}


def iter_documents(dataset: str) -> Iterator[Document]:
    """Documents in a fixed order; prompt ids default to a hash of the text."""
    names = dataset.split("+")
    if all(n in CORPORA for n in names):
        i = 0
        for name in names:
            for pid, text, labels in _corpus(name):
                yield Document(i, pid, text, labels=labels)
                i += 1
        return
    path = Path(dataset)
    if not path.exists():
        raise InputError(dataset, f"no such file (or corpus: {', '.join(CORPORA)}, lee+enwiki)")
    if path.suffix in (".jsonl", ".gz", ".zst") or path.name.endswith((".jsonl.gz", ".jsonl.zst")):
        for i, (_, row) in enumerate(read_prompts(path)):
            pid = str(row.prompt_id) if row.prompt_id is not None else text_prompt_id(row.text)
            yield Document(i, pid, row.text, row.criterion_score, row.split, dict(row.labels or {}),
                           dict(row.metadata or {}))
        return
    for i, (_, raw) in enumerate(iter_lines(path)):
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        yield Document(i, text_prompt_id(text), text)


def dataset_hash(docs: list[Document]) -> str:
    """sha256 over the documents' ids and texts (what the store was built from)."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.prompt_id.encode())
        h.update(b"\0")
        h.update(d.text.encode())
        h.update(b"\0")
    return h.hexdigest()
