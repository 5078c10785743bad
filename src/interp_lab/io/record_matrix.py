"""The in-memory form of activation records: a sparse prompts x features matrix plus row arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interp_lab.io.hashing import hash_unit
from interp_lab.io.sparse import Compressed
from interp_lab.schemas.records import SPLITS

SPLIT_CODES = {name: i for i, name in enumerate(SPLITS)}
NO_SPLIT = -1
NO_TOKEN = -1


class RowError(Exception):
    """A bad value found by the vectorized checks, located by row index."""

    def __init__(self, row: int, field: str, message: str):
        self.row, self.field, self.message = row, field, message
        super().__init__(message)

@dataclass
class RecordMatrix:
    """Activation records as arrays: one row per record, one column per feature."""

    path: str
    X: Compressed  # [rows, features] float32 (CSR, or CSC once ranked), absent = 0
    feature_ids: np.ndarray  # [features] object (str), sorted
    prompt_ids: np.ndarray  # [rows] object (str)
    token_index: np.ndarray  # [rows] int64, -1 = a per-prompt row
    scores: np.ndarray  # [rows] float64, nan = unscored (context only)
    splits: np.ndarray  # [rows] int8 code into SPLITS, -1 = not given
    texts: pa.ChunkedArray  # [rows] string (may hold nulls)
    tokens: np.ndarray | None  # [rows] object: metadata.token when given
    covariates: dict[str, np.ndarray]  # name -> [rows] float64 or object (categorical)
    models: list[str]
    sources: list[str]
    hooks: list[str]
    feature_hooks: dict[str, str] = field(default_factory=dict)  # when features come from several hooks
    feature_labels: dict[str, str] = field(default_factory=dict)
    feature_layers: dict[str, int] = field(default_factory=dict)
    feature_decoders: dict[str, list[float]] = field(default_factory=dict)
    duplicates_dropped: int = 0
    reader: str = "fast"
    _groups: np.ndarray | None = None
    _unique_prompts: np.ndarray | None = None
    _units: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def text(self, row: int) -> str | None:
        return self.texts[int(row)].as_py()

    def to_csc(self) -> Compressed:
        """Switch the matrix to column-major in place (frees the row-major copy)."""
        if self.X.format != "csc":
            self.X = self.X.tocsc()
        return self.X

    def prompt_groups(self) -> np.ndarray:
        """[rows] int code of each row's prompt_id (for resampling whole prompts)."""
        if self._groups is None:
            enc = pc.dictionary_encode(pa.array(self.prompt_ids, pa.string()))
            self._groups = enc.indices.to_numpy()
            self._unique_prompts = enc.dictionary.to_numpy(zero_copy_only=False)
        return self._groups

    def prompt_units(self) -> np.ndarray:
        """[rows] ``hash_unit`` of each row's prompt_id, computed once per distinct prompt."""
        if self._units is None:
            groups = self.prompt_groups()
            self._units = hash_unit(self._unique_prompts)[groups]
        return self._units

def text_prompt_id(text: str) -> str:
    """The default prompt_id of a row that has only a text: a short hash of it."""
    return "t-" + hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


