"""Streaming, validating JSONL: plain, ``.gz`` or ``.zst``, read and written.

Reading decodes each line into a typed record (``interp_lab.schemas``); any
problem becomes one ``InputError`` naming the file, the line and the field.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import msgspec

from interp_lab.errors import InputError
from interp_lab.io.atomic import atomic_path

T = TypeVar("T")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compression_of(path: str | os.PathLike) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None``, from the file's magic bytes (suffix as fallback)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        head = b""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if not head:
        return {".gz": "gzip", ".zst": "zstd"}.get(p.suffix)
    return None


def readable_file(path: str | os.PathLike, shown: str | os.PathLike | None = None) -> Path:
    """``path`` as a ``Path`` if it is a file this process can read; else ``InputError`` naming ``shown``."""
    p = Path(path)
    shown = p if shown is None else shown
    if not p.exists():
        raise InputError(shown, "file not found")
    if p.is_dir():
        raise InputError(shown, "expected a file, got a directory")
    if not os.access(p, os.R_OK):
        raise InputError(shown, "permission denied (cannot read the file)")
    return p


def open_native(path: str | os.PathLike):
    """``(raw, stream)``: the file as a pyarrow ``OSFile`` and the stream of its bytes, decompressed natively.

    pyarrow's own decompressors refuse a gzip or zstd stream that ends before its end marker (a file
    cut short), which Python's ``zstandard`` reader passes silently, and nothing here calls back into
    Python, so pyarrow's background reader can keep the stream safely (see ``fast_batches``).
    ``raw.tell()`` is the position in the file on disk.
    """
    import pyarrow as pa

    p = readable_file(path)
    raw = pa.OSFile(str(p))
    kind = compression_of(p)
    return raw, (raw if kind is None else pa.CompressedInputStream(raw, kind))


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, decompressing gzip / zstd transparently.

    A compressed file that is cut short or corrupt raises ``OSError`` while it is read.
    """
    p = readable_file(path)
    if compression_of(p) is None:
        return open(p, "rb")
    return io.BufferedReader(open_native(p)[1], 1 << 16)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line)`` for each non-blank line (1-based numbers).

    Raises ``InputError`` for an empty file (no non-blank line) or one that cannot be read to its end.
    """
    any_line, number = False, 0
    with open_binary(path) as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    any_line = True
                    yield number, line
        except OSError as exc:  # a gzip / zstd stream cut short or corrupt
            what = "decompress" if compression_of(path) else "read"
            where = f" past line {number}" if number else ""
            raise InputError(path, f"cannot {what}{where} ({exc}): the file is cut short or corrupt") from None
    if not any_line:
        raise InputError(path, "file is empty (expected at least one JSON line)")


# what decoding one line can raise: msgspec's errors, and RecursionError for JSON nested deeper than
# msgspec can follow (it stops at Python's recursion limit instead of overflowing the stack)
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
_NONFINITE = re.compile(rb"(NaN|Infinity|inf|nan)\b")  # not JSON, but what other writers put for non-finite
_KEY = re.compile(rb'"([^"\\]+)"\s*:')


def validation_error(path: str | os.PathLike, line: int, exc: Exception, raw: bytes = b"",
                     unit: str = "line") -> InputError:
    """Turn a msgspec decode / validation error into a one-line ``InputError``."""
    text = str(exc)
    m = _AT.match(text)
    msg, field = (m.group("msg"), (m.group("path") or "").lstrip(".")) if m else (text, "")
    if isinstance(exc, RecursionError):
        msg = f"JSON nested too deeply (the reader follows at most about {sys.getrecursionlimit()} levels)"
    elif msg.startswith("@"):
        # our own checks: "@field: message", relative to the path msgspec reports
        inner, _, msg = msg[1:].partition(": ")
        field = f"{field}.{inner}" if field else inner
    elif msg.startswith("Object missing required field"):
        missing = msg.split("`")[1] if "`" in msg else ""
        field = f"{field}.{missing}" if field else missing
        msg = "required field is missing"
    elif msg == "Number out of range":
        msg = "number out of range (expected a finite number)"
    elif msg.startswith("Invalid enum value"):
        msg = f"{msg.removeprefix('Invalid enum value ')} is not allowed here"
        if field.split(".")[-1] == "split":
            msg += " (expected discovery, calibration or heldout)"
    elif isinstance(exc, msgspec.ValidationError):
        msg = msg.replace("`", "")
    else:  # a DecodeError that is not a ValidationError: the line is not valid JSON
        at = _AT_BYTE.search(msg)
        bad = _NONFINITE.match(raw, int(at.group(1))) if at else None
        if bad:  # the field is the last key before the bad token (a list's, for a value in a list)
            keys = _KEY.findall(raw, 0, bad.start())
            field = keys[-1].decode("utf-8", "replace") if keys else field
            msg = f"{bad.group(1).decode()} is not a valid JSON number (expected a finite number)"
        elif "UTF-8" in msg:
            msg = "invalid UTF-8 (JSON text must be UTF-8; re-encode the file)"
        else:
            msg = f"malformed JSON ({msg.removeprefix('JSON is malformed: ')})"
    return InputError(path, msg, line=line, field=field or None, unit=unit)


def read_jsonl(path: str | os.PathLike, record_type: type[T]) -> Iterator[tuple[int, T]]:
    """Stream ``(line_number, record)`` pairs, validating every line."""
    decoder = msgspec.json.Decoder(record_type)
    for number, raw in iter_lines(path):
        try:
            yield number, decoder.decode(raw)
        except DECODE_ERRORS as exc:
            raise validation_error(path, number, exc, raw) from None


_encoder = msgspec.json.Encoder(order="sorted")
_row_encoder = msgspec.json.Encoder()  # keeps each row's own key order (prompt_id first ...)


def dumps(obj: Any) -> bytes:
    """Deterministic compact JSON (sorted keys)."""
    return _encoder.encode(obj)


def check_jsonl_out(path: str | os.PathLike, option: str) -> None:
    """``path`` can hold what ``write_jsonl`` writes: not a name that promises Parquet (checked before the
    work that makes the rows)."""
    if Path(path).suffix == ".parquet":
        from interp_lab.errors import UsageError

        raise UsageError(f"{option} {path}: these records are written as JSONL; name the file .jsonl, "
                         ".jsonl.gz or .jsonl.zst (interp-lab convert-records makes Parquet of it)")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Write rows as JSONL atomically (temp name, then rename); compresses by suffix."""
    count = 0
    p = Path(path)
    with atomic_path(p) as tmp:
        raw = open(tmp, "wb")
        if p.suffix == ".gz":
            # mtime=0 keeps the bytes identical run to run
            fh: IO[bytes] = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        elif p.suffix == ".zst":
            import zstandard

            fh = zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
        else:
            fh = raw
        try:
            buf = bytearray()
            for row in rows:
                buf += _row_encoder.encode(row)
                buf += b"\n"
                count += 1
                if len(buf) > 1 << 20:
                    fh.write(buf)
                    buf.clear()
            fh.write(buf)
        finally:
            fh.close()
            raw.close()
    return count
