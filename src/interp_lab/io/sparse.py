"""A small compressed sparse matrix (CSR / CSC) on numpy arrays.

The ranking path needs only construction, a row <-> column transpose,
slices and a few dense extractions; importing scipy.sparse for that costs
about 0.1 s per process (most of a CLI run's import time), so the core uses
this class and converts with ``to_scipy()`` where a user wants scipy.
Values are float32, indices int32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Compressed:
    """``format == "csr"``: ``indptr`` over rows, ``indices`` are columns; ``"csc"`` the other way round."""

    data: np.ndarray  # [nnz] float32
    indices: np.ndarray  # [nnz] int32
    indptr: np.ndarray  # [major + 1] int32 or int64
    shape: tuple[int, int]
    format: str = "csr"

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def major(self) -> int:
        return self.shape[0] if self.format == "csr" else self.shape[1]

    @property
    def minor(self) -> int:
        return self.shape[1] if self.format == "csr" else self.shape[0]

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_coo(cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Compressed:
        """CSR from coordinates (duplicates are not merged: callers guarantee none)."""
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=shape[0])
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(values[order].astype(np.float32), cols[order].astype(np.int32), _small(indptr), shape, "csr")

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> Compressed:
        rows, cols = np.nonzero(dense)
        return cls.from_coo(rows, cols, dense[rows, cols], dense.shape)

    # ------------------------------------------------------------------ structure

    def sort_indices(self, block: int = 1 << 20) -> None:
        """Sort the minor indices inside each major slice (in place, in blocks of slices)."""
        if self.nnz < 2:
            return
        ind = self.indices
        ok = ind[1:] > ind[:-1]
        ok[self.indptr[1:-1][(self.indptr[1:-1] > 0) & (self.indptr[1:-1] < self.nnz)] - 1] = True  # slice starts
        if ok.all():
            return  # already sorted (and free of duplicates)
        del ok
        for lo, hi, a, b in self._blocks(block):
            seg = np.repeat(np.arange(hi - lo, dtype=np.int64), np.diff(self.indptr[lo: hi + 1]))
            seg *= self.minor
            seg += ind[a:b]
            order = np.argsort(seg)
            ind[a:b] = ind[a:b][order]
            self.data[a:b] = self.data[a:b][order]

    def _blocks(self, block: int):
        """(first slice, end slice, first entry, end entry) of runs of whole slices of about ``block`` entries."""
        lo = 0
        while lo < self.major:
            hi = int(np.searchsorted(self.indptr, self.indptr[lo] + block, side="right")) - 1
            hi = min(max(hi, lo + 1), self.major)
            yield lo, hi, int(self.indptr[lo]), int(self.indptr[hi])
            lo = hi

    def duplicate_entry(self) -> tuple[int, int] | None:
        """(major, minor) of the first entry listed twice in one slice (indices sorted), or None."""
        if self.nnz < 2:
            return None
        same = np.flatnonzero(self.indices[1:] == self.indices[:-1])
        if not same.size:
            return None
        major = np.searchsorted(self.indptr, same, side="right") - 1
        nxt = np.searchsorted(self.indptr, same + 1, side="right") - 1
        hit = np.flatnonzero(major == nxt)
        if not hit.size:
            return None
        return int(major[hit[0]]), int(self.indices[same[hit[0]]])

    def eliminate_zeros(self) -> None:
        zero = self.data == 0
        if zero.any():
            keep = ~zero
            seg = np.repeat(np.arange(self.major, dtype=np.int64), np.diff(self.indptr))
            counts = np.bincount(seg[keep], minlength=self.major)
            indptr = np.zeros(self.major + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self.indptr = _small(indptr)
            self.indices, self.data = self.indices[keep], self.data[keep]

    def transposed_format(self, block: int = 1 << 20) -> Compressed:
        """The same matrix in the other format (CSR <-> CSC).

        A stable counting sort by minor index, done in blocks of major slices so
        the only full-size allocations are the output arrays.
        """
        counts = np.bincount(self.indices, minlength=self.minor)
        indptr = np.zeros(self.minor + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        data = np.empty(self.nnz, dtype=self.data.dtype)
        indices = np.empty(self.nnz, dtype=np.int32)
        fill = indptr[:-1].copy()  # next free slot of each output slice
        key_type = np.uint16 if self.minor <= 65535 else np.uint32
        for lo, hi, a, b in self._blocks(block):
            minor = self.indices[a:b]
            order = np.argsort(minor.astype(key_type), kind="stable")  # radix sort for uint16 keys
            sorted_minor = minor[order]
            c = np.bincount(sorted_minor, minlength=self.minor)
            start = np.zeros(self.minor, dtype=np.int64)
            np.cumsum(c[:-1], out=start[1:])
            dest = fill[sorted_minor] + (np.arange(b - a) - start[sorted_minor])
            major_of = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(self.indptr[lo: hi + 1]))
            data[dest] = self.data[a:b][order]
            indices[dest] = major_of[order]
            fill += c
        return Compressed(data, indices, _small(indptr), self.shape, "csc" if self.format == "csr" else "csr")

    def tocsc(self) -> Compressed:
        return self if self.format == "csc" else self.transposed_format()

    def tocsr(self) -> Compressed:
        return self if self.format == "csr" else self.transposed_format()

    # ------------------------------------------------------------------ selection

    def slice_major(self, lo: int, hi: int) -> Compressed:
        """Rows lo:hi of a CSR or columns lo:hi of a CSC (views, no copy)."""
        a, b = int(self.indptr[lo]), int(self.indptr[hi])
        shape = (hi - lo, self.shape[1]) if self.format == "csr" else (self.shape[0], hi - lo)
        return Compressed(self.data[a:b], self.indices[a:b], self.indptr[lo: hi + 1] - self.indptr[lo], shape,
                          self.format)

    def take_major(self, idx: np.ndarray) -> Compressed:
        """Rows (CSR) or columns (CSC) ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        lo, hi = self.indptr[idx], self.indptr[idx + 1]
        lens = hi - lo
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        pos = np.repeat(lo - indptr[:-1], lens) + np.arange(indptr[-1])
        shape = (len(idx), self.shape[1]) if self.format == "csr" else (self.shape[0], len(idx))
        return Compressed(self.data[pos], self.indices[pos], _small(indptr), shape, self.format)

    def major_slice(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(minor indices, values) of row i (CSR) or column i (CSC)."""
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.indices[a:b], self.data[a:b]

    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), columns] float64 for a CSC matrix (rows in the given order)."""
        assert self.format == "csc"
        pos = np.full(self.shape[0], -1, dtype=np.int64)
        pos[np.asarray(rows)] = np.arange(len(rows))
        out = np.zeros((len(rows), self.shape[1]))
        col = np.repeat(np.arange(self.shape[1]), np.diff(self.indptr))
        p = pos[self.indices]
        keep = p >= 0
        out[p[keep], col[keep]] = self.data[keep]
        return out

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape)
        major = np.repeat(np.arange(self.major), np.diff(self.indptr))
        if self.format == "csr":
            out[major, self.indices] = self.data
        else:
            out[self.indices, major] = self.data
        return out

    def equal(self, other: Compressed) -> bool:
        """Same shape and the same non-zero entries (as matrices, whatever the format)."""
        a, b = self.tocsr(), other.tocsr()
        a.sort_indices()
        b.sort_indices()
        return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
                and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))

    def to_scipy(self):
        import scipy.sparse as sp

        cls = sp.csr_matrix if self.format == "csr" else sp.csc_matrix
        return cls((self.data, self.indices, self.indptr), shape=self.shape)


def _small(indptr: np.ndarray) -> np.ndarray:
    return indptr.astype(np.int32) if indptr[-1] < 2**31 else indptr.astype(np.int64)
