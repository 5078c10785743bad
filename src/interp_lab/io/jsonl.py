"""Streaming, validating JSONL: plain, ``.gz`` or ``.zst``, read and written.

Reading decodes each line into a typed record (``interp_lab.schemas``); any
problem becomes one ``InputError`` naming the file, the line and the field.
"""

from __future__ import annotations

import gzip
import io
import os
import re
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


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, decompressing gzip / zstd transparently."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "expected a file, got a directory")
    kind = compression_of(p)
    if kind == "gzip":
        return gzip.open(p, "rb")
    if kind == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True))
    return open(p, "rb")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line)`` for each non-blank line (1-based numbers).

    Raises ``InputError`` for an empty file (no non-blank line).
    """
    any_line = False
    with open_binary(path) as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    any_line = True
                    yield number, line
        except (OSError, EOFError) as exc:  # corrupt gzip / zstd stream
            raise InputError(path, f"cannot decompress: {exc}") from None
    if not any_line:
        raise InputError(path, "file is empty (expected at least one JSON line)")


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NONFINITE = re.compile(rb'"([^"\\]+)"\s*:\s*-?(NaN|Infinity|inf|nan)\b')


def validation_error(path: str | os.PathLike, line: int, exc: Exception, raw: bytes = b"",
                     unit: str = "line") -> InputError:
    """Turn a msgspec decode / validation error into a one-line ``InputError``."""
    text = str(exc)
    m = _AT.match(text)
    msg, field = (m.group("msg"), (m.group("path") or "").lstrip(".")) if m else (text, "")
    if msg.startswith("@"):
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
        bad = _NONFINITE.search(raw)
        if bad:
            field = bad.group(1).decode("utf-8", "replace")
            msg = f"{bad.group(2).decode()} is not a valid JSON number (expected a finite number)"
        else:
            msg = f"malformed JSON ({msg.removeprefix('JSON is malformed: ')})"
    return InputError(path, msg, line=line, field=field or None, unit=unit)


def read_jsonl(path: str | os.PathLike, record_type: type[T]) -> Iterator[tuple[int, T]]:
    """Stream ``(line_number, record)`` pairs, validating every line."""
    decoder = msgspec.json.Decoder(record_type)
    for number, raw in iter_lines(path):
        try:
            yield number, decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
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
