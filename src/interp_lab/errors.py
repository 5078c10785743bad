"""Errors users see: one line naming file, line (or row) and field."""

from __future__ import annotations

import os


class InterpLabError(Exception):
    """Base class for errors interp-lab reports to users without a traceback."""

    exit_code = 1


class InputError(InterpLabError):
    """Bad input: a file, a location in it, a field and what was expected.

    ``location`` is a 1-based line number for JSONL/text files, a 1-based row
    for Parquet (``unit="row"``), or ``None`` when the whole file is at fault.
    """

    exit_code = 2

    def __init__(
        self,
        path: str | os.PathLike | None,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        unit: str = "line",
    ):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.field = field
        self.unit = unit
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(f"{self.unit} {self.line}")
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts)


class UsageError(InterpLabError):
    """The command was called in a way that cannot work (bad flag combination ...)."""

    exit_code = 2


class RemoteError(InterpLabError):
    """A web service did not give what was asked: no answer in time, a server error after every retry, a
    resource it does not have, access refused. The message names the URL and what was asked for."""

    exit_code = 2
