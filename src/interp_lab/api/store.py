"""``interp-lab store ...``: questions asked of an activation store (``store/queries.py``), what the user
keeps beside it (a name, tags), and its tokens encoded with an SAE (``store encode``).

Every function takes the store's directory (a path or a string) first: ``store_top("runs/s1", hook=...,
channel=3)``; the results are plain data, as the command line prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from interp_lab.api.registry import command
from interp_lab.errors import UsageError
from interp_lab.schemas.command import Progress, option

GROUP = "models and stores"


def store_path(help: str = "Store directory.") -> Any:
    """The store directory, the commands' first positional argument."""
    return option(help=help, argument=True)


class StoreSummary(TypedDict):
    """A store at a glance (``store summary``)."""

    path: str
    name: str | None  # the display name (store.json; default the directory's name)
    tags: list[str]
    model: str  # the model harvested, and its revision (weights sha256)
    revision: str | None
    dataset: str
    documents: int
    tokens: int  # rows: one per stored token
    hooks: list[str]
    dtype: str  # storage dtype of the activations
    shards: int
    complete: bool  # False while a harvest is under way or was interrupted (it resumes)
    bytes: int  # on disk, everything under the directory
    context_length: int
    labels: dict[str, dict[str, int]]  # label.* and split columns: up to 20 values each with their row counts
    latents: list[dict[str, Any]]  # SAE encodings (store encode): sae_id, architecture, d_sae, hook, nonzero ...


class StoreRow(TypedDict):
    """One store found by ``store list``."""

    path: str
    name: str | None
    tags: list[str]
    model: str
    dataset: str
    tokens: int
    hooks: int  # how many
    complete: bool
    created: str  # when the harvest last wrote (UTC, ISO 8601)


class ContextRow(TypedDict, total=False):
    """A token of the store and its context (``store search``, ``store top``); ``activation`` with top."""

    row: int
    doc_id: int
    prompt_id: str
    position: int  # in its sequence (0: the attention sink)
    token: str
    activation: float
    context: list[dict[str, Any]]  # the tokens around it in the same sequence: token, focus (the row itself)


class DiffResult(TypedDict):
    """``store diff``: the channels whose mean or firing rate differ most, A - B, with 95% intervals."""

    hook: str
    a: str  # A's store or its where-a selection
    b: str
    n_a: int  # rows compared
    n_b: int
    top: list[dict[str, Any]]  # channel, mean_a, mean_b, mean_diff, mean_diff_ci, rate_a, ... rate_diff_ci


@dataclass
class EncodeResult:
    """``store encode``: the encoding's ``info.json`` (sae_id, hook, rows, nonzero ...) and, with records_out,
    how many activation records were written (one per document)."""

    info: dict[str, Any]
    records: int | None = None
    paths: dict[str, Path] = field(default_factory=dict)  # latents: latents/<sae_id>/; records: records_out


@dataclass
class TraceResult:
    """``store plot``: the PNG written."""

    paths: dict[str, Path] = field(default_factory=dict)


def _store(path: Any):
    from interp_lab.store.reader import Store

    return Store(path)


# ------------------------------------------------------------------------------------------ summary, list


@dataclass(kw_only=True)
class StoreSummaryOptions:
    path: Path = store_path()


@command("store summary", options=StoreSummaryOptions, result=StoreSummary, group=GROUP, positional=("path",),
         help="Model, hooks, tokens, labels and size of a store.")
def store_summary(o: StoreSummaryOptions, progress: Progress) -> StoreSummary:
    from interp_lab.store.queries import summary

    return summary(_store(o.path))  # type: ignore[return-value]


@dataclass(kw_only=True)
class StoreListOptions:
    root: Path = option(Path("."), "Directory searched for stores (any depth).", argument=True)
    model: str | None = option(None)
    dataset: str | None = option(None)
    tag: str | None = option(None)
    since: str | None = option(None, "Created on or after YYYY-MM-DD.")


@command("store list", options=StoreListOptions, result=list[StoreRow], group=GROUP, positional=("root",),
         help="Stores under a directory, filtered by model, dataset, tag and date.")
def store_list(o: StoreListOptions, progress: Progress) -> list[StoreRow]:
    from interp_lab.store.queries import list_stores

    return list_stores(o.root, model=o.model, dataset=o.dataset, tag_filter=o.tag,  # type: ignore[return-value]
                       since=o.since)


# ------------------------------------------------------------------------------------------ tokens, channels


@dataclass(kw_only=True)
class StoreSearchOptions:
    path: Path = store_path()
    token: str | None = option(None, "Token text (surrounding spaces ignored).")
    regex: str | None = option(None, "Regular expression on the token text.")
    limit: int = option(20, min=1)
    window: int = option(6, min=0)


@command("store search", options=StoreSearchOptions, result=list[ContextRow], group=GROUP, positional=("path",),
         help="Find tokens by text or regex, with their contexts.")
def store_search(o: StoreSearchOptions, progress: Progress) -> list[ContextRow]:
    from interp_lab.store.queries import search

    return search(_store(o.path), token=o.token, regex=o.regex, limit=o.limit,  # type: ignore[return-value]
                  window=o.window)


@dataclass(kw_only=True)
class StoreTopOptions:
    path: Path = store_path()
    hook: str | None = option(None, "The hook whose channel is read.")
    latents: str | None = option(None, "Or: the SAE id of latents encoded into the store (interp-lab store "
                                       "encode).")
    channel: int = option(help="Index in the hook's last dimension (or the latent).")
    k: int = option(20, "Contexts shown: the top-k activations.", flag="--top-k", deprecated=("--k",), min=1)
    window: int = option(6, min=0)
    include_first: bool = option(False, "Keep position 0 (the attention sink).")


@command("store top", options=StoreTopOptions, result=list[ContextRow], group=GROUP, positional=("path",),
         help="Top-activating contexts of one channel or one SAE latent.")
def store_top(o: StoreTopOptions, progress: Progress) -> list[ContextRow]:
    if (o.hook is None) == (o.latents is None):
        raise UsageError("give exactly one of --hook and --latents")
    st = _store(o.path)
    if o.latents is not None:
        from interp_lab.store.latents import top_latent

        return top_latent(st, o.latents, o.channel, k=o.k, window=o.window,  # type: ignore[return-value]
                          exclude_first=not o.include_first)
    from interp_lab.store.queries import top

    return top(st, o.hook, o.channel, k=o.k, window=o.window,  # type: ignore[return-value]
               exclude_first=not o.include_first)


@dataclass(kw_only=True)
class StoreEncodeOptions:
    path: Path = store_path()
    sae: Path = option(help="SAE checkpoint (interp-lab, SAE Lens or sparsify).")
    sae_id: str | None = option(None, "Name under latents/ (default: the checkpoint's directory name and a hash of "
                                      "its weights).")
    batch_size: int = option(8192, min=1)
    records_out: Path | None = option(None, "Also write activation records of the latents (a row per document).")
    records_pooling: Literal["max", "mean"] = option("max", "max or mean over a document's tokens.")


@command("store encode", options=StoreEncodeOptions, result=EncodeResult, group="SAEs", positional=("path",),
         log=True, help="Encode every stored token with an SAE into sparse latents (latents/<sae_id>/part-*.parquet), "
                        "and with --records-out into activation records for inspect --backend records.")
def store_encode(o: StoreEncodeOptions, progress: Progress) -> EncodeResult:
    import json

    from interp_lab.sae.records import POOLINGS
    from interp_lab.sae.store_latents import encode_store

    if o.records_pooling not in POOLINGS:  # the command line's choice refuses it first; the API here
        raise UsageError(f"--records-pooling {o.records_pooling!r}: use {' or '.join(POOLINGS)}")
    if o.records_out is not None:
        from interp_lab.io.jsonl import check_jsonl_out

        check_jsonl_out(o.records_out, "--records-out")
    st = _store(o.path)
    out = encode_store(st, o.sae, sae_id=o.sae_id, batch_size=o.batch_size,
                       progress=lambda d, n: progress("encoding shards", d, n))
    res = EncodeResult(info=json.loads((out / "info.json").read_text()), paths={"latents": out})
    if o.records_out is not None:
        from interp_lab.sae.checkpoint import load_sae
        from interp_lab.sae.records import write_latent_records

        res.records = write_latent_records(load_sae(o.sae), st, res.info["hook"], o.records_out,
                                           pooling=o.records_pooling, sae_id=res.info["sae_id"])
        res.paths["records"] = Path(o.records_out)
    return res


@dataclass(kw_only=True)
class StorePlotOptions:
    path: Path = store_path()
    hook: str = option()
    channel: int = option()
    doc: int = option(0, "doc_id of the document to trace.")
    out: Path = option(help="PNG file.")


@command("store plot", options=StorePlotOptions, result=TraceResult, group=GROUP, positional=("path",),
         help="Per-token trace of one channel across one document (PNG).")
def store_plot(o: StorePlotOptions, progress: Progress) -> TraceResult:
    from interp_lab.store.queries import trace_png

    return TraceResult(paths={"png": trace_png(_store(o.path), o.hook, o.channel, o.doc, o.out)})


@dataclass(kw_only=True)
class StoreDiffOptions:
    a: Path = store_path("Store A.")
    b: Path | None = option(None, "Store B (omit to compare two subsets of A).", argument=True)
    hook: str = option()
    where_a: str | None = option(None, "COLUMN=VALUE selecting A's rows.")
    where_b: str | None = option(None, "COLUMN=VALUE selecting B's rows.")
    threshold: float = option(0.0, "Firing means activation > threshold.")
    k: int = option(20, "Channels shown: the top-k by the difference --by orders.", flag="--top-k", deprecated=("--k",),
                    min=1)
    # not a choice: a wrong value gets check_order's one line naming the flag and the two orders
    by: str = option("mean", "mean or rate: which difference orders the output.")


@command("store diff", options=StoreDiffOptions, result=DiffResult, group=GROUP, positional=("a", "b"),
         help="Channels whose mean or firing rate differs most between two stores or two labelled subsets.")
def store_diff(o: StoreDiffOptions, progress: Progress) -> DiffResult:
    from interp_lab.store.queries import check_order, diff

    check_order(o.by)
    d = diff(_store(o.a), o.hook, b=_store(o.b) if o.b else None, where_a=o.where_a, where_b=o.where_b,
             threshold=o.threshold)
    return {"hook": o.hook, "a": d.a, "b": d.b, "n_a": d.n_a, "n_b": d.n_b, "top": d.top(o.k, o.by)}


# ------------------------------------------------------------------------------------------ user metadata


@dataclass(kw_only=True)
class StoreTagOptions:
    path: Path = store_path()
    add: list[str] = option(default_factory=list)
    remove: list[str] = option(default_factory=list)


@command("store tag", options=StoreTagOptions, result=list[str], group=GROUP, positional=("path",),
         help="Add or remove tags (kept in store.json; the harvested files are untouched).")
def store_tag(o: StoreTagOptions, progress: Progress) -> list[str]:
    """The store's tags afterwards, sorted."""
    from interp_lab.store.queries import tag

    return tag(_store(o.path), o.add, o.remove)


@dataclass(kw_only=True)
class StoreRenameOptions:
    path: Path = store_path()
    name: str = option(argument=True)


@command("store rename", options=StoreRenameOptions, result=None, group=GROUP, positional=("path", "name"),
         help="Give a store a display name.")
def store_rename(o: StoreRenameOptions, progress: Progress) -> None:
    from interp_lab.store.queries import rename

    rename(_store(o.path), o.name)


@dataclass(kw_only=True)
class StoreRemoveOptions:
    path: Path = store_path()
    # the deletion's consent: the API refuses without it; the command line asks for it (cli/stores.py)
    yes: bool = option(False, "Do not ask.")


@command("store remove", options=StoreRemoveOptions, result=None, group=GROUP, positional=("path",),
         help="Delete a store directory.")
def store_remove(o: StoreRemoveOptions, progress: Progress) -> None:
    from interp_lab.store.queries import remove

    if not o.yes:
        raise UsageError(f"{o.path}: deleting a store needs yes=True (--yes on the command line)")
    remove(o.path)
