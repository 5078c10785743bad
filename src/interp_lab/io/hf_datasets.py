"""Documents from Hugging Face ``datasets``: ``hf:NAME[@REVISION][:CONFIG][:SPLIT]``.

A Hub id is streamed (``load_dataset(..., streaming=True)``, nothing downloaded ahead) at the commit the
Hub names when asked, so the identity records what was read. Offline, a local path: a directory written
by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (``hf:/data/wiki[:SPLIT]``, memory-mapped by
``load_from_disk``), a Parquet file (pyarrow, batch by batch) or a JSONL file (``.jsonl[.gz|.zst]``, line
by line). A path is anything that exists, or starts with ``/``, ``.`` or ``~``.

The text column is ``text_column`` if given, else ``text`` if the dataset has one, else its only string
column. The other columns of scalar numbers, booleans or class labels become each document's labels (the
store's ``label.<name>`` columns); other string columns do not (a title or a summary would be repeated on
every token row of a store). Rows whose text is null or blank are skipped; a document's ``doc_id`` is its
row in the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp_lab.errors import InputError, UsageError

PREFIX = "hf:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_JSONL = (".jsonl", ".jsonl.gz", ".jsonl.zst")
_BATCH = 512  # rows per read


def is_hf(dataset: str) -> bool:
    return dataset.startswith(PREFIX)


@dataclass(frozen=True)
class HFSpec:
    """A parsed ``hf:`` name."""

    kind: str  # hub | disk | parquet | jsonl
    name: str  # the Hub id, or the absolute path
    config: str | None = None
    split: str | None = None
    revision: str | None = None  # asked for (hub): a branch, tag or commit

    @property
    def shown(self) -> str:
        """What a manifest calls it: the Hub name (with the split read), or a local file's or directory's name."""
        if self.kind == "hub":
            return PREFIX + ":".join([self.name, self.config or "", self.split or ""]).rstrip(":")
        return PREFIX + Path(self.name).name + (f":{self.split}" if self.split else "")


def _looks_local(first: str) -> bool:
    return first.startswith(("/", ".", "~")) or first.endswith((".parquet", *_JSONL)) or Path(first).exists()


def parse(dataset: str) -> HFSpec:
    """``hf:NAME[@REVISION][:CONFIG][:SPLIT]`` or ``hf:PATH[:SPLIT]``; a bad name is one line (exit 2)."""
    rest = dataset[len(PREFIX):]
    parts = rest.split(":")
    first = parts[0]
    if not first:
        raise UsageError(f"--dataset {dataset!r}: give hf:NAME[:CONFIG][:SPLIT] (a Hub id) or hf:PATH "
                         "(a save_to_disk directory, a .parquet or .jsonl file)")
    if _looks_local(first):
        path = Path(first).expanduser().absolute()
        if not path.exists():
            raise InputError(path, "no such file or directory (hf: names a Hub id, a save_to_disk directory, "
                                   "or a .parquet / .jsonl file)")
        if path.is_dir():
            if not ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
                raise InputError(path, "not a directory written by Dataset.save_to_disk or DatasetDict.save_to_disk "
                                       "(no dataset_dict.json or state.json)")
            if len(parts) > 2:
                raise UsageError(f"--dataset {dataset!r}: a save_to_disk directory takes at most a split "
                                 "(hf:PATH[:SPLIT])")
            return HFSpec("disk", str(path), split=(parts[1] or None) if len(parts) == 2 else None)
        kind = "parquet" if path.name.endswith(".parquet") else "jsonl" if path.name.endswith(_JSONL) else None
        if kind is None:
            raise InputError(path, "an hf: file is .parquet or .jsonl[.gz|.zst] (or give a save_to_disk directory)")
        if len(parts) > 1:
            raise UsageError(f"--dataset {dataset!r}: a {kind} file has no configs or splits (hf:PATH)")
        return HFSpec(kind, str(path))
    if len(parts) > 3:
        raise UsageError(f"--dataset {dataset!r}: too many parts (hf:NAME[@REVISION][:CONFIG][:SPLIT])")
    name, _, revision = first.partition("@")
    if not _HUB_ID.match(name) or "@" in revision:
        raise UsageError(f"--dataset {dataset!r}: {name!r} is not a Hugging Face dataset id (owner/name), nor a "
                         "local path")
    config = (parts[1] or None) if len(parts) > 1 else None
    split = (parts[2] or None) if len(parts) > 2 else None
    return HFSpec("hub", name, config, split, revision or None)


def _datasets():
    try:
        import datasets
    except ImportError:
        raise UsageError("hf: datasets need the Hugging Face datasets library: pip install "
                         "'interp-lab[datasets]'") from None
    datasets.disable_progress_bars()  # a progress bar per shard of a local dataset says nothing
    return datasets


def _choose_split(spec: HFSpec, splits: list[str], where: str) -> str:
    """The split asked for, else the only one, else ``train``."""
    if spec.split is not None:
        if spec.split not in splits:
            raise UsageError(f"{where}: no split {spec.split!r} (splits: {', '.join(splits)})")
        return spec.split
    if len(splits) == 1:
        return splits[0]
    if "train" in splits:
        return "train"
    raise UsageError(f"{where}: several splits and none named train; give one: hf:...:SPLIT "
                     f"({', '.join(splits)})")


def _hub_revision(spec: HFSpec) -> str:
    """The commit the Hub serves for ``spec`` now (one quick request), or one line saying it does not."""
    import datasets.config
    from huggingface_hub import HfApi

    where = f"hf:{spec.name}"
    if datasets.config.HF_HUB_OFFLINE:  # HF_HUB_OFFLINE or HF_DATASETS_OFFLINE
        raise UsageError(f"{where}: a Hub dataset, and the Hub is switched off (HF_HUB_OFFLINE); offline, give a "
                         "directory written by save_to_disk or a .parquet / .jsonl file (hf:PATH)")
    try:
        info = HfApi().dataset_info(spec.name, revision=spec.revision, timeout=10)
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise UsageError(f"{where}: the Hugging Face Hub does not serve this dataset here ({first}); offline, give "
                         "a directory written by save_to_disk or a .parquet / .jsonl file (hf:PATH)") from None
    return str(info.sha)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


class Source:
    """An opened ``hf:`` dataset: its columns, the text column chosen, its identity and its rows."""

    def __init__(self, dataset: str, text_column: str | None = None):
        self.spec = parse(dataset)
        self.dataset = dataset
        self.split = self.spec.split
        self.revision: str | None = None
        self.fingerprint: str | None = None
        self._table: Any = None  # a datasets Dataset / IterableDataset, or a pyarrow ParquetFile
        self._identity: dict[str, Any] | None = None
        strings, scalars, classes = getattr(self, f"_open_{self.spec.kind}")()
        self.text_column = self._choose_column(text_column, strings, scalars)
        self.label_columns = [c for c in scalars if c != self.text_column]
        self._classes = classes  # class-label column -> its names

    # -- opening: (string columns, scalar columns, class-label names) -------------------------------------
    def _open_disk(self):
        ds_lib = _datasets()
        try:
            ds = ds_lib.load_from_disk(self.spec.name)
        except Exception as exc:
            raise InputError(self.spec.name, f"load_from_disk failed: {_first_line(exc)}") from None
        if isinstance(ds, ds_lib.DatasetDict):
            self.split = _choose_split(self.spec, list(ds), self.spec.name)
            ds = ds[self.split]
        elif self.spec.split is not None:
            raise UsageError(f"{self.spec.name}: a Dataset directory (one split), not a DatasetDict: drop "
                             f":{self.spec.split}")
        self.fingerprint = ds._fingerprint
        self._table = ds
        return _feature_columns(ds.features)

    def _open_hub(self):
        ds_lib = _datasets()
        self.revision = _hub_revision(self.spec)
        where = f"hf:{self.spec.name}"
        try:
            ds = ds_lib.load_dataset(self.spec.name, self.spec.config, split=self.spec.split, streaming=True,
                                     revision=self.revision)
            if isinstance(ds, ds_lib.IterableDatasetDict):
                self.split = _choose_split(self.spec, list(ds), where)
                ds = ds[self.split]
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"{where}: {_first_line(exc)}") from None
        self._table = ds
        if ds.features is not None:
            return _feature_columns(ds.features)
        first = next(iter(ds), None)  # a stream without dataset info: the first row says what the columns are
        if first is None:
            raise UsageError(f"{where}: the split {self.split!r} has no rows")
        return _value_columns(first)

    def _open_parquet(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self._table = pq.ParquetFile(self.spec.name)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(self.spec.name, f"not a Parquet file ({_first_line(exc)})") from None
        schema = self._table.schema_arrow
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        scalars = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                   or pa.types.is_boolean(f.type)]
        return strings, scalars, _parquet_class_labels(schema)

    def _open_jsonl(self):
        for _, row in self._jsonl_rows():  # the first row says what the columns are
            return _value_columns(row)
        raise InputError(self.spec.name, "file is empty")

    def _choose_column(self, asked: str | None, strings: list[str], scalars: list[str]) -> str:
        where = self.spec.name if self.spec.kind != "hub" else f"hf:{self.spec.name}"
        if asked is not None:
            if asked in strings:
                return asked
            kind = "a column of numbers, not text" if asked in scalars else "no such column"
            raise UsageError(f"--text-column {asked!r}: {where} has {kind} (string columns: "
                             f"{', '.join(strings) or 'none'})")
        if "text" in strings:
            return "text"
        if len(strings) == 1:
            return strings[0]
        if not strings:
            raise UsageError(f"{where}: no string column to read documents from")
        raise UsageError(f"{where}: no 'text' column; name the one to read with --text-column "
                         f"(string columns: {', '.join(strings)})")

    # -- identity ----------------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What was read, so that two different datasets never share a cache entry: the name, config, split and
        revision of a Hub dataset; the path, split and ``_fingerprint`` of a saved one; a file's sha256; the
        text column."""
        from interp_lab.io.hashing import sha256_file

        if self._identity is not None:  # a file is hashed once per opening
            return dict(self._identity)
        out: dict[str, Any] = {"kind": self.spec.kind, "name": self.spec.name}
        if self.spec.kind == "hub":
            out.update(config=self.spec.config, split=self.split, revision=self.revision)
        elif self.spec.kind == "disk":
            out.update(split=self.split, fingerprint=self.fingerprint)
        else:
            out["sha256"] = sha256_file(self.spec.name)
        out["text_column"] = self.text_column
        self._identity = out
        return dict(out)

    @property
    def shown(self) -> str:
        spec = self.spec
        return HFSpec(spec.kind, spec.name, spec.config, self.split, spec.revision).shown

    # -- rows ----------------------------------------------------------------------------------------------
    def rows(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """``(row, text, labels)`` of every row with a non-blank text, in the dataset's order."""
        cols = [self.text_column, *self.label_columns]
        if self.spec.kind == "jsonl":
            yield from self._jsonl_docs()
            return
        if self.spec.kind == "parquet":
            batches = (b.to_pydict() for b in self._table.iter_batches(batch_size=_BATCH, columns=cols))
        else:
            batches = self._table.select_columns(cols).iter(batch_size=_BATCH)
        i = 0
        for batch in batches:
            for j, text in enumerate(batch[self.text_column]):
                if isinstance(text, str) and text.strip():
                    yield i + j, text, {c: self._label(c, batch[c][j]) for c in self.label_columns
                                        if batch[c][j] is not None}
            i += len(batch[self.text_column])

    def _label(self, column: str, value: Any) -> Any:
        names = self._classes.get(column)
        return names[value] if names is not None and isinstance(value, int) and 0 <= value < len(names) else value

    def _jsonl_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        import msgspec

        from interp_lab.io.jsonl import iter_lines, validation_error

        decoder = msgspec.json.Decoder()
        for number, raw in iter_lines(self.spec.name):
            try:
                row = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise validation_error(self.spec.name, number, exc, raw) from None
            if not isinstance(row, dict):
                raise InputError(self.spec.name, f"expected a JSON object, got {type(row).__name__}", line=number)
            yield number, row

    def _jsonl_docs(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        col = self.text_column
        for i, (number, row) in enumerate(self._jsonl_rows()):
            text = row.get(col)
            if text is not None and not isinstance(text, str):
                raise InputError(self.spec.name, f"expected a string, got {type(text).__name__}", line=number,
                                 field=col)
            if text and text.strip():
                yield i, text, {c: row[c] for c in self.label_columns
                                if isinstance(row.get(c), (bool, int, float))}


def _feature_columns(features) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(string columns, scalar columns, class-label names) of a datasets ``Features``."""
    from datasets import ClassLabel, Value

    strings, scalars, classes = [], [], {}
    for name, f in features.items():
        if isinstance(f, Value) and f.dtype in ("string", "large_string"):
            strings.append(name)
        elif isinstance(f, Value) and (f.dtype == "bool" or f.dtype.startswith(("int", "uint", "float"))):
            scalars.append(name)
        elif isinstance(f, ClassLabel):
            scalars.append(name)
            classes[name] = list(f.names)
    return strings, scalars, classes


def _parquet_class_labels(schema) -> dict[str, list[str]]:
    """The class-label columns' names that ``datasets`` writes into a Parquet file's schema metadata."""
    import json

    try:
        features = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))["info"]["features"]
        return {k: list(f["names"]) for k, f in features.items()
                if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)}
    except (ValueError, KeyError, TypeError):
        return {}


def _value_columns(row: dict[str, Any]):
    """(string columns, scalar columns, {}) of a row given as a dict (a JSONL line, a streamed row)."""
    strings = [k for k, v in row.items() if isinstance(v, str)]
    scalars = [k for k, v in row.items() if isinstance(v, (bool, int, float))]
    return strings, scalars, {}
