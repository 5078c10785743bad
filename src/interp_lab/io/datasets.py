"""Documents to harvest: a prompt-set JSONL, a text file (one document per line), a gensim corpus, or a
Hugging Face dataset.

Corpora by name: ``lee`` (gensim's 300 Lee news documents) and ``enwiki`` (its
shortened English Wikipedia dump, 106 articles); ``lee+enwiki`` for both.
``hf:NAME[:CONFIG][:SPLIT]`` reads a Hugging Face dataset (io/hf_datasets.py:
streamed from the Hub, or a save_to_disk directory, a Parquet or JSONL file),
its text from ``text_column``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_lab.errors import InputError, UsageError
from interp_lab.io.jsonl import iter_lines
from interp_lab.io.prompts import read_prompts
from interp_lab.io.records import text_prompt_id

CORPORA = ("lee", "enwiki")
DATASET_HELP = ("Prompt JSONL, text file (a document per line), lee, enwiki, lee+enwiki, or a Hugging Face dataset: "
                "hf:NAME[:CONFIG][:SPLIT] (streamed from the Hub), hf:DIR[:SPLIT] (save_to_disk), hf:FILE.parquet, "
                "hf:FILE.jsonl.")
TEXT_COLUMN_HELP = "The text column of an hf: dataset (default: text, else its only string column)."


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


class Corpus:
    """A dataset named on the command line, opened: its documents, the name a manifest gives it, its identity."""

    def __init__(self, dataset: str, text_column: str | None = None):
        from interp_lab.io.hf_datasets import Source, is_hf

        if text_column is not None and not is_hf(dataset):
            raise UsageError(f"--text-column {text_column!r}: only an hf: dataset has columns to choose from "
                             f"(--dataset {dataset} reads its own text field)")
        self.dataset = dataset
        self.source = Source(dataset, text_column) if is_hf(dataset) else None

    @property
    def streamed(self) -> bool:
        """Read as far as asked (an hf: dataset), rather than whole (the corpora and files, as before)."""
        return self.source is not None

    @property
    def label(self) -> str:
        """The store manifest's ``dataset``: a corpus name, a file's name, or the hf: name with its split."""
        if self.source is not None:
            return self.source.shown
        return self.dataset if "/" not in self.dataset else Path(self.dataset).name

    def identity(self) -> dict[str, Any] | None:
        """An hf: dataset's name, config, split, revision or fingerprint (a file's sha256) and text column;
        None for the rest (their name is their identity, as before)."""
        return None if self.source is None else self.source.identity()

    def key(self) -> str:
        """A cache key part: the name as given, or for an hf: dataset its identity."""
        ident = self.identity()
        return self.dataset if ident is None else json.dumps(ident, sort_keys=True)

    def documents(self) -> Iterator[Document]:
        if self.source is None:
            yield from _plain_documents(self.dataset)
            return
        for row, text, labels in self.source.rows():
            yield Document(row, text_prompt_id(text), text, labels=labels)

    def read(self, max_tokens: int | None = None, count_tokens: Callable[[str], int] | None = None) -> list[Document]:
        """Every document; of an hf: dataset, only as many as ``max_tokens`` tokens need (``count_tokens`` counts a
        text's), so a Hub stream is read no further than a harvest uses."""
        if not self.streamed or max_tokens is None or count_tokens is None:
            return list(self.documents())
        docs, total = [], 0
        for d in self.documents():
            docs.append(d)
            total += count_tokens(d.text)
            if total >= max_tokens:
                break
        return docs


def iter_documents(dataset: str, text_column: str | None = None) -> Iterator[Document]:
    """Documents in a fixed order; prompt ids default to a hash of the text."""
    return Corpus(dataset, text_column).documents()


def _plain_documents(dataset: str) -> Iterator[Document]:
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
