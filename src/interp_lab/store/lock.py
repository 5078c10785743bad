"""One writer per store: an exclusive OS lock (``flock``) on ``<store>/.lock`` while a store is written.

The kernel drops the lock when its holder exits, however it exits (``kill -9`` included), so a lock
left by a killed harvest never blocks the resume; the file, which names the holder's pid, is removed
when the lock is released.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from interp_lab.errors import UsageError

LOCK_FILE = ".lock"


class StoreLock:
    """Held from construction until ``release()`` (or the end of a ``with`` block)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.root} is a file, not a store directory")
        self._made_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / LOCK_FILE
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UsageError(f"{self.root} is being written by another process (pid {holder}); wait for it "
                                 "to finish or stop it, then run again (a stopped harvest resumes)") from None
            # the holder before us may have removed the file between our open and our lock: then the lock
            # we hold is on a file no one else will find, so take the one now at the path
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held, so that no one locks the file being removed
        os.close(self._fd)  # closing drops the lock
        self._fd = None
        if self._made_root and not any(self.root.iterdir()):  # nothing was written: leave nothing behind
            self.root.rmdir()

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
