"""Fast, validating readers and writers for every interp-lab file format."""

from interp_lab.io.atomic import atomic_dir, atomic_path, write_bytes_atomic
from interp_lab.io.jsonl import dumps, iter_lines, open_binary, read_jsonl, write_jsonl
from interp_lab.io.records import RecordMatrix, read_records, write_records_parquet

__all__ = [
    "RecordMatrix",
    "atomic_dir",
    "atomic_path",
    "dumps",
    "iter_lines",
    "open_binary",
    "read_jsonl",
    "read_records",
    "write_bytes_atomic",
    "write_jsonl",
    "write_records_parquet",
]
